import { ENFORCEMENT_MODES, VISIBILITY_LEVELS } from '@palisade/model'
import { useState } from 'preact/hooks'
import type { Label } from '../api.js'
import { call, labelText, otherMessages } from '../api.js'
import { useLive } from '../hooks.js'
import type { Column } from '../list.js'
import { Pager, SearchBox, SortableHead, useListView } from '../list.js'
import {
  agentStatusName,
  ENFORCEMENT_MEANING,
  enforcementName,
  firewallModeName,
  healthName,
  syncName,
  tamperingName,
  visibilityName,
} from '../names.js'
import { loadWorkloads } from '../policy-data.js'
import { Confirm, Errors, Labels, ListState, Page } from '../ui.js'
import type { Ordered, Ven } from './agent-upgrade.js'
import { AgentVersion, loadVens, UpgradeAgents, UpgradeOutcome } from './agent-upgrade.js'

export interface Workload {
  href: string
  name: string
  hostname: string
  managed: boolean
  os_type?: string
  enforcement_mode: string
  visibility_level: string
  labels: Label[]
  interfaces: { name: string; address: string }[]
  agent: {
    type?: string
    status: {
      status: string
      security_policy_sync_state: string
      security_policy_applied_version: number | null
      last_heartbeat_on: string | null
    }
  } | null
  palisade: {
    firewall_mode: string
    firewall_mode_reason: string
    firewall_mode_matched_scopes: Label[][]
    host?: {
      firewalls?: { kind: string; evidence: string[] }[]
      foreignTables?: string[]
      recommendations?: { severity: string; message: string }[]
    }
    tampering?: { condition: string; repairs: number } | null
    health?: string | null
    health_reason?: string | null
    policy_error?: { reason: string; at: string | null } | null
  }
}

export const idOf = (href: string) => href.split('/').pop() ?? ''
export const addressesOf = (w: Workload) => w.interfaces.map((i) => i.address).join(', ')

/**
 * The enforcement of a managed workload: a choice that changes what its firewall blocks at
 * once, so it is confirmed first. An unmanaged workload has nothing that enforces.
 */
export function EnforcementSelect(props: { w: Workload; onSaved: () => void; labelled?: boolean }) {
  const { w } = props
  const [asked, setAsked] = useState<string>()
  if (!w.agent) return <span class="muted">Unmanaged: not enforced</span>
  return (
    <>
      <select
        aria-label={`Enforcement of ${w.name}`}
        value={w.enforcement_mode}
        onChange={(e) => {
          const select = e.target as HTMLSelectElement
          setAsked(select.value)
          select.value = w.enforcement_mode
        }}
      >
        {ENFORCEMENT_MODES.map((v) => (
          <option key={v} value={v}>
            {enforcementName(v)}
          </option>
        ))}
      </select>
      {asked && (
        <Confirm
          title={`Change the enforcement of ${w.name}?`}
          confirm="Change enforcement"
          danger={asked === 'full'}
          onClose={() => setAsked(undefined)}
          onConfirm={async () => {
            await call('PUT', `/api/v2${w.href}`, { enforcement_mode: asked })
            props.onSaved()
          }}
        >
          <p>
            From <strong>{enforcementName(w.enforcement_mode)}</strong> to{' '}
            <strong>{enforcementName(asked)}</strong>: {ENFORCEMENT_MEANING[asked]}.
          </p>
          <p>
            This takes effect on the host at once; it is not provisioned. Its firewall mode may
            change too, when a coexistence scope applies only to enforced or illuminated workloads.
          </p>
        </Confirm>
      )}
    </>
  )
}

/** How much traffic the agent reports: it changes no verdict, so it applies without asking. */
export function VisibilitySelect(props: { w: Workload; onSaved: () => void }) {
  const { w } = props
  const [error, setError] = useState<unknown>()
  if (!w.agent) return <span class="muted">—</span>
  return (
    <>
      <select
        aria-label={`Visibility of ${w.name}`}
        value={w.visibility_level}
        onChange={(e) => {
          setError(undefined)
          call('PUT', `/api/v2${w.href}`, {
            visibility_level: (e.target as HTMLSelectElement).value,
          }).then(props.onSaved, setError)
        }}
      >
        {VISIBILITY_LEVELS.map((v) => (
          <option key={v} value={v}>
            {visibilityName(v)}
          </option>
        ))}
      </select>
      <Errors messages={otherMessages(error, [])} />
    </>
  )
}

export function Health({ w }: { w: Workload }) {
  const policyError = w.palisade.policy_error && (
    <span class="tag warn" title={w.palisade.policy_error.reason}>
      Policy error: {w.palisade.policy_error.reason}
    </span>
  )
  if (!w.agent) return policyError || <span class="muted">—</span>
  const t = w.palisade.tampering
  const health = w.palisade.health ?? 'unknown'
  return (
    <span>
      <span class={`health ${health}`}>{healthName(health)}</span>
      {policyError}
      {w.agent.status.status !== 'active' && (
        <span class="tag warn">{agentStatusName(w.agent.status.status)}</span>
      )}
      {t && t.condition !== 'none' && (
        <span class="tag warn">
          Tampering {tamperingName(t.condition).toLowerCase()}, {t.repairs} repair
          {t.repairs === 1 ? '' : 's'}
        </span>
      )}
    </span>
  )
}

/** The effective firewall mode and why; a workload without an agent has none. */
export function ModeCell({ w }: { w: Workload }) {
  if (!w.agent)
    return (
      <span class="muted" title="No agent: nothing on this host enforces policy">
        — <span class="sr-only">none: no agent enforces policy here</span>
      </span>
    )
  return (
    <>
      <strong>{firewallModeName(w.palisade.firewall_mode)}</strong>
      <span class="why">{w.palisade.firewall_mode_reason}</span>
      {w.palisade.firewall_mode_matched_scopes.map((scope, i) => (
        <span class="why" key={i}>
          {scope.length === 0 ? 'all workloads' : <Labels labels={scope} />}
        </span>
      ))}
    </>
  )
}

const FILTERS = {
  all: () => true,
  managed: (w: Workload) => w.agent !== null,
  unmanaged: (w: Workload) => w.agent === null,
  exclusive: (w: Workload) => w.agent !== null && w.palisade.firewall_mode === 'exclusive',
  coexistence: (w: Workload) => w.agent !== null && w.palisade.firewall_mode !== 'exclusive',
  attention: (w: Workload) =>
    w.agent !== null &&
    (w.palisade.health === 'unhealthy' ||
      w.agent.status.status !== 'active' ||
      (w.palisade.tampering?.condition ?? 'none') !== 'none'),
} as const
const FILTER_TEXT: Record<keyof typeof FILTERS, string> = {
  all: 'All workloads',
  managed: 'Managed',
  unmanaged: 'Unmanaged',
  exclusive: 'Exclusive',
  coexistence: 'Coexistence',
  attention: 'Need attention',
}

const COLUMNS: Column<Workload & { ven?: Ven }>[] = [
  { name: 'Name', sort: (w) => w.name },
  { name: 'IP addresses', sort: (w) => addressesOf(w) },
  { name: 'Labels', sort: (w) => w.labels.map(labelText).join(' ') },
  { name: 'Enforcement', sort: (w) => (w.agent ? w.enforcement_mode : '~') },
  { name: 'Visibility' },
  { name: 'Firewall mode', sort: (w) => (w.agent ? w.palisade.firewall_mode : '~') },
  { name: 'Health', sort: (w) => (w.agent ? (w.palisade.health ?? 'unknown') : '~') },
  { name: 'Policy sync' },
  { name: 'Agent', sort: (w) => w.ven?.version ?? '~' },
]

export function WorkloadsPage() {
  const live = useLive(async () => {
    const [workloads, vens] = await Promise.all([loadWorkloads<Workload>(), loadVens()])
    const venOf = new Map(vens.flatMap((v) => v.workloads.map((w) => [w.href, v] as const)))
    return { workloads: workloads.map((w) => ({ ...w, ven: venOf.get(w.href) })), vens }
  }, 3000)
  const [filter, setFilter] = useState<keyof typeof FILTERS>('all')
  /** Workloads chosen for an action on their agents, by href. */
  const [chosen, setChosen] = useState<ReadonlySet<string>>(new Set())
  const [ordered, setOrdered] = useState<Ordered>()
  const all = live.data?.workloads ?? []
  const vens = live.data?.vens ?? []
  const chosenVens = all.flatMap((w) => (w.ven && chosen.has(w.href) ? [w.ven] : []))
  const choose = (href: string, on: boolean) => {
    const next = new Set(chosen)
    if (on) next.add(href)
    else next.delete(href)
    setChosen(next)
  }
  const shown = all.filter(FILTERS[filter])
  const view = useListView(shown, {
    text: (w) => `${w.name} ${w.hostname} ${addressesOf(w)} ${w.labels.map(labelText).join(' ')}`,
    columns: COLUMNS,
    sortBy: 'Name',
  })
  return (
    <Page
      title="Workloads"
      actions={
        <UpgradeAgents
          chosen={chosenVens}
          onOrdered={(o) => {
            setOrdered(o)
            // The ordered release shows at once, not at the next refresh.
            void live.reload()
          }}
        />
      }
    >
      {ordered && <UpgradeOutcome {...ordered} all={vens} />}
      <div class="filters">
        <SearchBox
          id="wl-search"
          label="Search"
          placeholder="name, address or label"
          view={view}
          total={shown.length}
          noun="workloads"
        />
        <div>
          <label for="wl-filter">Show</label>
          <select
            id="wl-filter"
            value={filter}
            onChange={(e) =>
              setFilter((e.target as HTMLSelectElement).value as keyof typeof FILTERS)
            }
          >
            {Object.entries(FILTER_TEXT).map(([k, t]) => (
              <option key={k} value={k}>
                {t}
              </option>
            ))}
          </select>
        </div>
      </div>
      <Errors messages={otherMessages(live.error, [])} />
      <ListState loading={!live.data} error={live.error} empty={all.length === 0}>
        No workloads yet: pair an agent (see <a href="#/pairing">Pairing</a>) or add an unmanaged
        workload through the API.
      </ListState>
      {all.length > 0 && view.matching === 0 && (
        <p class="empty">No workload matches: clear the search or choose another filter.</p>
      )}
      {view.rows.length > 0 && (
        <div class="scroll">
          <table aria-label="Workloads">
            <SortableHead columns={COLUMNS} view={view} />
            <tbody>
              {view.rows.map((w) => (
                <tr key={w.href} data-workload={w.name}>
                  <td>
                    {w.ven && (
                      <input
                        type="checkbox"
                        class="choose"
                        aria-label={`Choose ${w.name}`}
                        checked={chosen.has(w.href)}
                        onChange={(e) => choose(w.href, (e.target as HTMLInputElement).checked)}
                      />
                    )}
                    <a href={`#/workloads/${idOf(w.href)}`}>{w.name}</a>
                    {w.hostname && w.hostname !== w.name && <span class="why">{w.hostname}</span>}
                  </td>
                  <td class="addresses">{addressesOf(w) || '—'}</td>
                  <td>
                    <Labels labels={w.labels} />
                  </td>
                  <td>
                    <EnforcementSelect w={w} onSaved={() => void live.reload()} />
                  </td>
                  <td>
                    <VisibilitySelect w={w} onSaved={() => void live.reload()} />
                  </td>
                  <td class="mode">
                    <ModeCell w={w} />
                  </td>
                  <td>
                    <Health w={w} />
                  </td>
                  <td>
                    {w.agent ? (
                      <span>
                        {syncName(w.agent.status.security_policy_sync_state)}
                        {w.agent.status.security_policy_applied_version !== null &&
                          ` (version ${w.agent.status.security_policy_applied_version})`}
                      </span>
                    ) : (
                      '—'
                    )}
                  </td>
                  <td>
                    <AgentVersion ven={w.ven} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Pager view={view} label="Workload pages" />
    </Page>
  )
}
