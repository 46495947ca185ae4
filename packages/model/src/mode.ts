import type {
  CoexistenceMode,
  CoexistenceWorkloadMode,
  FirewallCoexistenceItem,
  FirewallSettings,
} from './firewall-settings.js'
import type { EnforcementMode, Workload } from './workload.js'

/** Why a workload got its mode; the console and `explain` show this. */
export type ModeReason =
  | { readonly kind: 'endpoint' }
  | { readonly kind: 'platform'; readonly platform: 'darwin' | 'solaris' | 'aix' }
  | { readonly kind: 'scope'; readonly items: readonly number[] }
  | { readonly kind: 'no_match' }

export interface ModeResolution {
  readonly mode: CoexistenceMode
  /** False for `idle` workloads: the mode is reported but nothing is programmed. */
  readonly applied: boolean
  readonly reason: ModeReason
}

const WORKLOAD_MODE_MATCHES: Record<CoexistenceWorkloadMode, readonly EnforcementMode[]> = {
  enforced: ['selective', 'full'],
  illuminated: ['visibility_only'],
}

function itemMatches(item: FirewallCoexistenceItem, workload: Workload): boolean {
  if (!item.scope.every((href) => workload.labels.includes(href))) return false
  if (item.workloadMode === undefined) return true
  return WORKLOAD_MODE_MATCHES[item.workloadMode].includes(workload.enforcementMode)
}

/**
 * Resolves a workload's firewall mode from the active firewall settings
 * (spec/coexistence.md section 1; first rule that applies wins).
 */
export function resolveMode(workload: Workload, settings: FirewallSettings): ModeResolution {
  const applied = workload.enforcementMode !== 'idle'
  if (workload.agentType === 'endpoint') {
    return { mode: 'coexistence_primary', applied, reason: { kind: 'endpoint' } }
  }
  const p = workload.osPlatform
  if (p === 'darwin' || p === 'solaris' || p === 'aix') {
    return { mode: 'coexistence_non_primary', applied, reason: { kind: 'platform', platform: p } }
  }
  const items = settings.firewallCoexistence.flatMap((item, i) =>
    itemMatches(item, workload) ? [i] : [],
  )
  if (items.length === 0) return { mode: 'exclusive', applied, reason: { kind: 'no_match' } }
  // The safer choice wins when several items match: our blocks stay final and first.
  const primary = items.some((i) => settings.firewallCoexistence[i]?.illumioPrimary === true)
  return {
    mode: primary ? 'coexistence_primary' : 'coexistence_non_primary',
    applied,
    reason: { kind: 'scope', items },
  }
}

/** The read-only `firewall_coexistence` the API shows on a workload: null means exclusive. */
export function workloadCoexistenceView(
  resolution: ModeResolution,
): { illumio_primary: boolean } | null {
  if (resolution.mode === 'exclusive') return null
  return { illumio_primary: resolution.mode === 'coexistence_primary' }
}

/** One line for people: what mode and why. */
export function describeModeReason(resolution: ModeResolution): string {
  const r = resolution.reason
  const base = (() => {
    switch (r.kind) {
      case 'endpoint':
        return 'endpoint agent: always coexistence, Palisade primary'
      case 'platform':
        return `platform ${r.platform}: the setting does not apply; coexists with the platform packet filter`
      case 'scope':
        return `matched coexistence scope${r.items.length > 1 ? 's' : ''} #${r.items.map((i) => i + 1).join(', #')}`
      case 'no_match':
        return 'no coexistence scope matches: exclusive by default'
    }
  })()
  return resolution.applied ? base : `${base} (idle: nothing programmed)`
}
