/**
 * The vendor's filters of `GET /workloads` and `GET /vens`, applied to a workload or an agent in
 * memory. Pure: the route hands in the rows, their agents and the checked filters.
 */
import { venHref } from '../hrefs.js'
import type { AgentBuild } from '@palisade/protocol'
import type { Filters } from '../query/query-filters.js'
import type { AgentView, VenWorkload } from '../stores/agents.js'
import { isOnline } from '../stores/agents.js'
import type { WorkloadRow } from '../stores/workloads.js'
import { policyHealthOf, venHealthOf } from './agent-health.js'
import { LEGACY_MODES } from './workload-fields.js'

/** Filters about data Palisade does not have: given, they match nothing (documented). */
const NO_DATA_WORKLOAD = [
  'agent.active_pce_fqdn',
  'container_clusters',
  'managed_by',
  'vulnerability_summary.vulnerability_exposure_score[gte]',
  'vulnerability_summary.vulnerability_exposure_score[lte]',
  'risk_summary.ransomware.workload_exposure_severity',
]

export function workloadMatches(
  f: Filters,
  org: number,
  w: WorkloadRow,
  agent: AgentView | undefined,
  syncState: string | undefined,
): boolean {
  if (NO_DATA_WORKLOAD.some((n) => f.has(n))) return false
  if (f.bool('soft_deleted') === true) return false
  const mode = f.string('mode')
  const modes = f.list('enforcement_modes')
  return (
    f.text('name', w.name) &&
    f.text('hostname', w.hostname) &&
    f.text('description', (w as { description?: string | null }).description) &&
    f.text('os_id', w.os_id) &&
    f.textAny(
      'ip_address',
      w.interfaces.map((i) => i.address),
    ) &&
    f.text('external_data_set', w.external_data_set) &&
    f.text('external_data_reference', w.external_data_reference) &&
    f.is('enforcement_mode', w.enforcement_mode) &&
    (modes === undefined || modes.includes(w.enforcement_mode)) &&
    (mode === undefined || LEGACY_MODES[mode] === w.enforcement_mode) &&
    f.is('visibility_level', w.visibility_level) &&
    f.flag('log_traffic', w.visibility_level !== 'flow_off') &&
    f.flag('managed', w.managed === 1) &&
    f.flag('online', isOnline(w, agent)) &&
    f.labelsMatch((h) => w.labels.includes(h)) &&
    // What only a managed workload has: an unmanaged one matches none of these.
    f.is('policy_health', agent && policyHealthOf(agent)) &&
    f.is('ven', agent && venHref(org, agent.id)) &&
    f.is('ven.ven_type', agent && w.agent_type) &&
    f.is('security_policy_update_mode', agent && 'adaptive') &&
    f.is('security_policy_sync_state', syncState) &&
    f.timeRange('last_heartbeat_on', agent?.last_heartbeat_at)
  )
}

/** The VEN status the API shows: an unpairing agent is still active until it goes. */
export const venStatusOf = (a: Pick<AgentView, 'status'>) =>
  a.status.startsWith('unpairing:') ? 'active' : a.status

/** The build an agent last reported; agents before upgrades reported none: they were all 0.1.0. */
export const agentVersion = (a: Pick<AgentView, 'build'>): string =>
  a.build ? (JSON.parse(a.build) as AgentBuild).version : '0.1.0'

/** Ordered to upgrade, and not yet running the release ordered. */
export const upgradePending = (a: Pick<AgentView, 'build' | 'target_release'>): boolean =>
  a.target_release !== null && agentVersion(a) !== a.target_release

export function venMatches(f: Filters, agent: AgentView, w: VenWorkload): boolean {
  if (
    ['active_pce_fqdn', 'container_clusters'].some((n) => f.has(n)) ||
    f.bool('authentication_recovery') === true
  )
    return false
  const os = [w.os_id, w.os_detail, w.os_platform]
  const conditions = (agent.health.conditions ?? []).map((c) => c.type)
  const health = f.string('health')
  const condition = f.string('condition')
  const disconnected = f.string('disconnected_before')
  const pending = f.bool('upgrade_pending')
  return (
    f.text('name', agent.name ?? w.name) &&
    f.text('hostname', w.hostname) &&
    f.text('description', agent.description) &&
    f.textAny('os', os) &&
    f.textAny('os_id', os) &&
    f.textAny(
      'ip_address',
      w.interfaces.map((i) => i.address),
    ) &&
    f.is('status', venStatusOf(agent)) &&
    (health === undefined || venHealthOf(agent) === (health === 'unhealthy' ? 'error' : health)) &&
    (condition === undefined || conditions.includes(condition)) &&
    f.labelsMatch((h) => w.labels.includes(h)) &&
    f.versionRange('version', agentVersion(agent)) &&
    (pending === undefined || pending === upgradePending(agent)) &&
    f.timeRange('last_heartbeat_at', agent.last_heartbeat_at) &&
    f.timeRange('last_goodbye_at', agent.last_goodbye_at) &&
    (disconnected === undefined ||
      (agent.last_heartbeat_at !== null && agent.last_heartbeat_at < disconnected)) &&
    f.is('ven_type', w.agent_type) &&
    f.is('activation_type', 'pairing_key')
  )
}
