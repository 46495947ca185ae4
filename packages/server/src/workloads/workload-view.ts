import type { FirewallSettings } from '@palisade/model'
import { describeModeReason, resolveMode, workloadCoexistenceView } from '@palisade/model'
import { firewallSettings } from '../host-policy/snapshot-builder.js'
import { agentHref, venHref, workloadHref } from '../hrefs.js'
import type { AgentView, VenWorkload } from '../stores/agents.js'
import { agentsOfWorkloads, isOnline } from '../stores/agents.js'
import type { Db } from '../stores/db.js'
import { policyHashes } from '../stores/host-policies.js'
import { labelsByHref } from '../stores/labels.js'
import type { WorkloadRow } from '../stores/workloads.js'
import { WORKLOAD_DETAILS, workloadModel } from '../stores/workloads.js'
import { venHealthOf } from './agent-health.js'
import { legacyModeOf } from './workload-fields.js'
import { agentVersion, upgradePending, venStatusOf } from './workload-filters.js'
import type { Doc } from '../validate.js'
import { interfaceView } from './workload-interfaces.js'

/** The API views of these workloads, with what they need read once for them all. */
export async function workloadViews(db: Db, org: number, rows: WorkloadRow[]): Promise<Doc[]> {
  const ids = rows.map((w) => w.id)
  const agents = await agentsOfWorkloads(db, org, ids)
  const hashes = await policyHashes(db, ids)
  const view = {
    labels: await labelsByHref(db, org),
    settings: await firewallSettings(db, org),
    agents: new Map(agents.map((a) => [a.workload_id, a])),
    policyHashes: hashes,
  }
  return rows.map((w) => workloadView(org, w, view))
}

/** What the workload views of one request need, read once per request, not per workload. */
interface ViewContext {
  readonly labels: ReadonlyMap<string, { key: string; value: string }>
  readonly settings: FirewallSettings
  readonly agents: ReadonlyMap<string, AgentView>
  /** The stored host policy's hash of each workload, to tell synced from syncing. */
  readonly policyHashes: ReadonlyMap<string, string>
}

/** `synced` once the agent applied the host policy stored for it now, else `syncing`. */
export function syncStateOf(agent: AgentView, current: string | undefined): 'synced' | 'syncing' {
  return agent.applied_version !== null &&
    current !== undefined &&
    agent.health.applied_hash === current
    ? 'synced'
    : 'syncing'
}

/** A workload as the API shows it, with the computed firewall mode and its agent's state. */
function workloadView(
  org: number,
  w: WorkloadRow,
  { labels, settings, agents, policyHashes }: ViewContext,
): Doc {
  const agent = agents.get(w.id)
  const model = workloadModel(org, w)
  const policyError = policyErrorOf(w.policy_error)
  const mode = resolveMode(model, settings)
  const health = agent?.health
  return {
    href: workloadHref(org, w.id),
    name: w.name,
    hostname: w.hostname,
    description: w.description,
    managed: w.managed === 1,
    online: isOnline(w, agent),
    enforcement_mode: w.enforcement_mode,
    visibility_level: w.visibility_level,
    os_type: w.os_platform,
    ...Object.fromEntries(WORKLOAD_DETAILS.map((k) => [k, w[k]])),
    ignored_interface_names: w.ignored_interface_names,
    labels: model.labels.map((href) => ({ href, ...labels.get(href) })),
    interfaces: w.interfaces.map(interfaceView),
    firewall_coexistence: workloadCoexistenceView(mode),
    ven: agent
      ? {
          href: venHref(org, agent.id),
          hostname: w.hostname,
          name: agent.name ?? w.name,
          status: venStatusOf(agent),
          ven_type: w.agent_type,
        }
      : null,
    // The vendor's deprecated agent object: clients still read `agent.config` of every
    // managed workload (the Go SDK dereferences it on each update).
    agent: agent
      ? {
          href: agentHref(org, agent.id),
          type: w.agent_type,
          active_pce_fqdn: null,
          target_pce_fqdn: null,
          config: {
            mode: legacyModeOf(w.enforcement_mode),
            log_traffic: w.visibility_level !== 'flow_off',
            security_policy_update_mode: 'adaptive',
            visibility_level: w.visibility_level,
          },
          secure_connect: { matching_issuer_name: null },
          status: {
            uid: agent.id,
            status: agent.status,
            agent_version: agentVersion(agent),
            last_heartbeat_on: agent.last_heartbeat_at,
            uptime_seconds: null,
            managed_since: agent.created_at,
            security_policy_sync_state: syncStateOf(agent, policyHashes.get(w.id)),
            security_policy_applied_at: agent.applied_at,
            security_policy_received_at: agent.applied_at,
            security_policy_refresh_at: null,
            security_policy_applied_version: agent.applied_version,
            fw_config_current: agent.applied_mode !== null,
            firewall_rule_count: null,
            agent_health: [
              ...(health?.conditions ?? []),
              ...(policyError
                ? [
                    {
                      type: 'workload.policy_error',
                      severity: 'error',
                      first_reported_timestamp: policyError.at,
                      reason: policyError.reason,
                    },
                  ]
                : []),
            ],
            agent_health_errors: { errors: [], warnings: [] },
          },
        }
      : null,
    external_data_set: w.external_data_set,
    external_data_reference: w.external_data_reference,
    created_at: w.created_at,
    updated_at: w.updated_at,
    deleted: false,
    // Palisade's additions: the effective mode and why, and what the agent found on the host.
    palisade: {
      // Why the server could not compute with this workload's stored row: its host keeps the
      // policy it last had, and no other host's policy counts it as a peer.
      policy_error: policyError,
      firewall_mode: mode.mode,
      firewall_mode_reason: describeModeReason(mode),
      // The labels of the coexistence scopes that matched, so a reader needs no second lookup.
      firewall_mode_matched_scopes:
        mode.reason.kind === 'scope'
          ? mode.reason.items.map((i) =>
              (settings.firewallCoexistence[i]?.scope ?? []).map((href) => ({
                href,
                ...labels.get(href),
              })),
            )
          : [],
      ...(agent && {
        host: agent.survey,
        tampering: health?.tampering ?? null,
        health: health?.health ?? null,
        health_reason: health?.reason ?? null,
      }),
    },
  }
}

/** An agent as the VEN API shows it. */
export function venView(org: number, a: AgentView, w: VenWorkload) {
  return {
    href: venHref(org, a.id),
    name: a.name ?? w.name,
    description: a.description ?? null,
    hostname: w.hostname,
    uid: a.id,
    os_id: w.os_id,
    os_detail: w.os_detail,
    os_platform: w.os_platform,
    status: venStatusOf(a),
    ven_type: w.agent_type,
    activation_type: 'pairing_key',
    version: agentVersion(a),
    /** Palisade: the release an upgrade order named, if any. */
    target_release: a.target_release,
    interfaces: w.interfaces.map((i) => ({ ...i, link_state: 'up' })),
    workloads: [{ href: workloadHref(org, w.id) }],
    labels: w.labels.map((href) => ({ href })),
    last_heartbeat_at: a.last_heartbeat_at,
    last_goodbye_at: a.last_goodbye_at,
    unpair_allowed: true,
    upgrade_pending: upgradePending(a),
    active_pce_fqdn: null,
    target_pce_fqdn: null,
    container_cluster: null,
    secure_connect: null,
    caps: ['write', 'unpair'],
    conditions: a.health.conditions ?? [],
    health: venHealthOf(a),
    created_at: a.created_at,
  }
}

/** A workload's stored policy error, as the API shows it. */
function policyErrorOf(stored: string | null): { reason: string; at: string | null } | null {
  if (!stored) return null
  try {
    const e = JSON.parse(stored) as { reason?: unknown; at?: unknown }
    return {
      reason: typeof e.reason === 'string' ? e.reason : stored,
      at: typeof e.at === 'string' ? e.at : null,
    }
  } catch {
    return { reason: stored, at: null }
  }
}
