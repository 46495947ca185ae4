import type { FirewallSettings } from '@palisade/model'
import type { AgentBuild } from '@palisade/protocol'
import { describeModeReason, resolveMode, workloadCoexistenceView } from '@palisade/model'
import { firewallSettings } from '../host-policy/snapshot-builder.js'
import { agentHref, venHref, workloadHref } from '../hrefs.js'
import type { AgentView, VenWorkload } from '../stores/agents.js'
import { agentsOfWorkloads } from '../stores/agents.js'
import type { Db } from '../stores/db.js'
import { policyHashes } from '../stores/host-policies.js'
import { labelsByHref } from '../stores/labels.js'
import type { WorkloadRow } from '../stores/workloads.js'
import { workloadModel } from '../stores/workloads.js'
import type { Doc } from '../validate.js'

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

/** A workload as the API shows it, with the computed firewall mode and its agent's state. */
function workloadView(
  org: number,
  w: WorkloadRow,
  { labels, settings, agents, policyHashes }: ViewContext,
): Doc {
  const agent = agents.get(w.id)
  const model = workloadModel(org, w)
  const mode = resolveMode(model, settings)
  const current = agent ? policyHashes.get(w.id) : undefined
  const health = agent?.health
  return {
    href: workloadHref(org, w.id),
    name: w.name,
    hostname: w.hostname,
    managed: w.managed === 1,
    online: agent ? agent.status === 'active' : true,
    enforcement_mode: w.enforcement_mode,
    visibility_level: w.visibility_level,
    os_type: w.os_platform,
    labels: model.labels.map((href) => ({ href, ...labels.get(href) })),
    interfaces: w.interfaces.map((i) => ({ ...i, link_state: 'up' })),
    firewall_coexistence: workloadCoexistenceView(mode),
    ven: agent ? { href: venHref(org, agent.id) } : null,
    agent: agent
      ? {
          href: agentHref(org, agent.id),
          type: w.agent_type,
          status: {
            status: agent.status,
            last_heartbeat_on: agent.last_heartbeat_at,
            managed_since: agent.created_at,
            security_policy_sync_state:
              agent.applied_version !== null &&
              current !== undefined &&
              health?.applied_hash === current
                ? 'synced'
                : 'syncing',
            security_policy_applied_at: agent.applied_at,
            security_policy_applied_version: agent.applied_version,
            fw_config_current: agent.applied_mode !== null,
            agent_health: health?.conditions ?? [],
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
    name: w.name,
    hostname: w.hostname,
    uid: a.id,
    os_platform: w.os_platform,
    status: a.status.startsWith('unpairing:') ? 'active' : a.status,
    ven_type: w.agent_type,
    activation_type: 'pairing_key',
    // Agents before upgrades reported no build: they were all 0.1.0.
    version: a.build ? (JSON.parse(a.build) as AgentBuild).version : '0.1.0',
    /** Palisade: the release an upgrade order named, if any. */
    target_release: a.target_release,
    workloads: [{ href: workloadHref(org, w.id) }],
    labels: w.labels.map((href) => ({ href })),
    last_heartbeat_at: a.last_heartbeat_at,
    conditions: a.health.conditions ?? [],
    created_at: a.created_at,
  }
}
