/**
 * Agents: one per managed workload, with its credential (a hash), its state as it last reported
 * it (health, the host survey, the live ruleset) and a pending unpair. The JSON columns are read
 * here and nowhere else.
 */
import type { Ruleset } from '@palisade/firewall'
import type { Failsafe } from '@palisade/model'
import type { Selectable } from 'kysely'
import type { Database } from '../db/schema.js'
import type { Doc } from '../validate.js'
import { isObj } from '../validate.js'
import { byChunk } from './collection.js'
import type { Db } from './db.js'
import type { WorkloadRow } from './workloads.js'

/** What an agent last said of its health, with the hash of the policy it applied. */
export interface AgentHealth {
  readonly applied_hash?: string
  readonly conditions?: readonly { readonly type: string }[]
  readonly failsafe?: Failsafe
  readonly [field: string]: unknown
}

type AgentRecord = Selectable<Database['agents']>
/** An agent with its health, survey and ruleset read. */
export interface AgentRow extends Omit<AgentRecord, 'health' | 'survey' | 'ruleset'> {
  readonly health: AgentHealth
  readonly survey: Doc
  readonly ruleset: Ruleset | null
}

/** What a view shows of an agent: not its credential, nor the host ruleset (up to 2 MB). */
const VIEW_COLUMNS = [
  'id',
  'workload_id',
  'status',
  'last_heartbeat_at',
  'applied_version',
  'applied_at',
  'applied_mode',
  'health',
  'survey',
  'created_at',
  'name',
  'description',
  'last_goodbye_at',
  'target_release',
  'build',
] as const
export type AgentView = Pick<AgentRow, (typeof VIEW_COLUMNS)[number]>

/**
 * An agent's stored health, read defensively: it came from the agent, so what is not an object
 * reads as none, and conditions that are not a list of typed objects are left out.
 */
function readHealth(text: string): AgentHealth {
  let health: unknown
  try {
    health = JSON.parse(text)
  } catch {
    return {}
  }
  if (!isObj(health)) return {}
  const { conditions, ...rest } = health
  if (conditions === undefined) return rest
  const typed = Array.isArray(conditions)
    ? conditions.filter((c): c is { type: string } => isObj(c) && typeof c.type === 'string')
    : []
  return { ...rest, conditions: typed }
}
const readSurvey = (text: string) => JSON.parse(text) as Doc
const viewOf = (r: Pick<AgentRecord, (typeof VIEW_COLUMNS)[number]>): AgentView => ({
  ...r,
  health: readHealth(r.health),
  survey: readSurvey(r.survey),
})

/** The agents of these workloads of the org. */
export async function agentsOfWorkloads(
  db: Db,
  org: number,
  workloadIds: readonly string[],
): Promise<AgentView[]> {
  const rows = await byChunk(workloadIds, (chunk) =>
    db
      .selectFrom('agents')
      .select(VIEW_COLUMNS)
      .where('org_id', '=', org)
      .where('workload_id', 'in', chunk)
      .execute(),
  )
  return rows.map(viewOf)
}

/** The workload fields a VEN shows. */
export type VenWorkload = Pick<
  WorkloadRow,
  | 'id'
  | 'name'
  | 'hostname'
  | 'os_platform'
  | 'agent_type'
  | 'labels'
  | 'interfaces'
  | 'os_id'
  | 'os_detail'
>

/** Every agent of the org with its workload. */
export async function agentsWithWorkloads(
  db: Db,
  org: number,
): Promise<{ agent: AgentView; workload: VenWorkload }[]> {
  const rows = await db
    .selectFrom('agents')
    .innerJoin('workloads', 'workloads.id', 'agents.workload_id')
    .select(VIEW_COLUMNS.map((c) => `agents.${c}` as const))
    .select([
      'workloads.name as wname',
      'workloads.hostname',
      'workloads.os_platform',
      'workloads.agent_type',
      'workloads.labels',
      'workloads.interfaces',
      'workloads.os_id',
      'workloads.os_detail',
      'workloads.id as wid',
    ])
    .where('agents.org_id', '=', org)
    .execute()
  return rows.map(
    ({
      wname,
      hostname,
      os_platform,
      agent_type,
      labels,
      interfaces,
      os_id,
      os_detail,
      wid,
      ...agent
    }) => ({
      agent: viewOf(agent),
      workload: {
        id: wid,
        name: wname,
        interfaces: JSON.parse(interfaces) as WorkloadRow['interfaces'],
        os_id,
        os_detail,
        hostname,
        os_platform,
        agent_type,
        labels: JSON.parse(labels) as string[],
      },
    }),
  )
}

export async function findAgent(db: Db, org: number, id: string): Promise<AgentView | undefined> {
  const a = await db
    .selectFrom('agents')
    .select(VIEW_COLUMNS)
    .where('org_id', '=', org)
    .where('id', '=', id)
    .executeTakeFirst()
  return a && viewOf(a)
}

/** A workload's agent, with everything it reported. */
export async function agentOfWorkload(db: Db, workloadId: string): Promise<AgentRow | undefined> {
  const a = await db
    .selectFrom('agents')
    .selectAll()
    .where('workload_id', '=', workloadId)
    .executeTakeFirst()
  return (
    a && {
      ...a,
      health: readHealth(a.health),
      survey: readSurvey(a.survey),
      ruleset: a.ruleset === null ? null : (JSON.parse(a.ruleset) as Ruleset),
    }
  )
}

/** Which of these ids are agents of the org. */
export async function agentIdsIn(db: Db, org: number, ids: readonly string[]): Promise<string[]> {
  const rows = await db
    .selectFrom('agents')
    .select('id')
    .where('org_id', '=', org)
    .where('id', 'in', ids.length > 0 ? ids : [''])
    .execute()
  return rows.map((r) => r.id)
}

/** The workloads of these agents. */
export async function workloadsOfAgents(db: Db, ids: readonly string[]): Promise<string[]> {
  const rows = await db
    .selectFrom('agents')
    .select('workload_id')
    .where('id', 'in', [...ids, ''])
    .execute()
  return rows.map((r) => r.workload_id)
}

/**
 * Whether a workload is online: a managed one while its agent keeps in touch (not marked
 * offline, not unpairing); an unmanaged one as its owner says (online unless set otherwise).
 */
export function isOnline(
  w: { readonly online: number | null },
  agent: { readonly status: string } | undefined,
): boolean {
  return agent ? agent.status === 'active' : w.online !== 0
}

/** Sets what a VEN is called and described as (its own name, apart from its workload's). */
export async function setVenNames(
  db: Db,
  id: string,
  fields: { name?: string | null; description?: string | null },
): Promise<void> {
  if (Object.keys(fields).length === 0) return
  await db.updateTable('agents').set(fields).where('id', '=', id).execute()
}

/** Records an agent's goodbye (a graceful stop). */
export async function setGoodbye(db: Db, id: string, at: string): Promise<void> {
  await db.updateTable('agents').set({ last_goodbye_at: at }).where('id', '=', id).execute()
}

/** Asks agents to unpair, restoring the firewall as `mode` says, at their next policy request. */
export async function markUnpairing(db: Db, ids: readonly string[], mode: string): Promise<void> {
  for (const id of ids)
    await db
      .updateTable('agents')
      .set({ status: `unpairing:${mode}` })
      .where('id', '=', id)
      .execute()
}

/** Orders agents to run `release` (told in the reply to their next status report). */
export async function setTargetRelease(
  db: Db,
  ids: readonly string[],
  release: string,
): Promise<void> {
  if (ids.length === 0) return
  await db.updateTable('agents').set({ target_release: release }).where('id', 'in', ids).execute()
}

/** The firewall restore an unpair asked for, if one is pending. */
export const unpairOf = (status: string | undefined) =>
  status?.startsWith('unpairing:') ? status.slice('unpairing:'.length) : undefined

/** What a request's agent credential names: the agent, its hash to compare, its workload. */
export async function agentCredential(db: Db, id: string) {
  return db
    .selectFrom('agents')
    .innerJoin('workloads', 'workloads.id', 'agents.workload_id')
    .select([
      'agents.id',
      'agents.org_id',
      'agents.token_hash',
      'agents.workload_id',
      'agents.status',
      'workloads.hostname',
    ])
    .where('agents.id', '=', id)
    .executeTakeFirst()
}

/** The unpair asked for an agent, read again (it may have come while the agent waited). */
export async function pendingUnpair(db: Db, id: string): Promise<string | undefined> {
  return unpairOf(
    (await db.selectFrom('agents').select('status').where('id', '=', id).executeTakeFirst())
      ?.status,
  )
}

/** A newly activated agent: active, nothing applied or reported yet. */
export async function insertAgent(
  db: Db,
  a: {
    id: string
    org: number
    workloadId: string
    tokenHash: string
    at: string
    profileId: number
  },
): Promise<void> {
  await db
    .insertInto('agents')
    .values({
      id: a.id,
      pairing_profile_id: a.profileId,
      org_id: a.org,
      workload_id: a.workloadId,
      token_hash: a.tokenHash,
      status: 'active',
      last_heartbeat_at: a.at,
      applied_version: null,
      applied_at: null,
      applied_mode: null,
      sync_state: 'syncing',
      health: '{}',
      survey: '{}',
      created_at: a.at,
      ruleset: null,
      ruleset_at: null,
      backend: null,
    })
    .execute()
}

export async function deleteAgent(db: Db, id: string): Promise<void> {
  await db.deleteFrom('agents').where('id', '=', id).execute()
}

// ---- liveness and metrics ----

/** Every agent's last heartbeat, goodbye and health, with its workload's hostname and labels. */
export async function heartbeats(db: Db) {
  const rows = await db
    .selectFrom('agents')
    .innerJoin('workloads', 'workloads.id', 'agents.workload_id')
    .select([
      'agents.id',
      'agents.org_id',
      'agents.status',
      'agents.health',
      'agents.last_heartbeat_at',
      'agents.last_goodbye_at',
      'workloads.hostname',
      'workloads.labels',
      'workloads.agent_type',
    ])
    .execute()
  // Labels are left as stored: a row that does not read must not stop the others' check.
  return rows.map((r) => ({ ...r, health: readHealth(r.health) }))
}

/** Sets an agent's health, and marks it offline if `offline`. */
export async function setAgentHealth(
  db: Db,
  id: string,
  health: AgentHealth,
  offline: boolean,
): Promise<void> {
  await db
    .updateTable('agents')
    .set({ health: JSON.stringify(health), ...(offline && { status: 'offline' }) })
    .where('id', '=', id)
    .execute()
}

/** How many agents there are in each status. */
export async function agentsByStatus(db: Db): Promise<Map<string, number>> {
  const agents = await db.selectFrom('agents').select(['status', 'last_heartbeat_at']).execute()
  const byStatus = new Map<string, number>()
  for (const a of agents) byStatus.set(a.status, (byStatus.get(a.status) ?? 0) + 1)
  return byStatus
}

/** How many agents applied the host policy stored for them now. */
export async function agentsInSync(db: Db): Promise<number> {
  const synced = await db
    .selectFrom('agents')
    .innerJoin('host_policies', 'host_policies.workload_id', 'agents.workload_id')
    .select(['agents.health', 'host_policies.hash'])
    .execute()
  return synced.filter((s) => readHealth(s.health).applied_hash === s.hash).length
}

/**
 * Forgets an agent whose workload is deleted by force: its row goes, and a tombstone keeps its
 * credential's hash so that its next call is told to unpair (restoring the firewall as `mode`
 * says) rather than refused as a stranger's.
 */
export async function forgetAgent(db: Db, id: string, mode: string, at: string): Promise<void> {
  const a = await db
    .selectFrom('agents')
    .innerJoin('workloads', 'workloads.id', 'agents.workload_id')
    .select(['agents.id', 'agents.org_id', 'agents.token_hash', 'workloads.hostname'])
    .where('agents.id', '=', id)
    .executeTakeFirstOrThrow()
  await db
    .insertInto('forgotten_agents')
    .values({ ...a, firewall_restore: mode, created_at: at })
    .execute()
  await db.deleteFrom('agents').where('id', '=', id).execute()
}

/** A forgotten agent's tombstone, by its id. */
export async function forgottenAgent(db: Db, id: string) {
  return db.selectFrom('forgotten_agents').selectAll().where('id', '=', id).executeTakeFirst()
}

/** The forgotten agent said goodbye: it has unpaired, and its tombstone goes. */
export async function dropForgotten(db: Db, id: string): Promise<void> {
  await db.deleteFrom('forgotten_agents').where('id', '=', id).execute()
}

/** The CIDRs an agent's pairing profile lets it report addresses in; undefined: any. */
export async function allowedRangesOf(db: Db, agentId: string): Promise<string[] | undefined> {
  const r = await db
    .selectFrom('agents')
    .innerJoin('pairing_profiles', 'pairing_profiles.id', 'agents.pairing_profile_id')
    .select('pairing_profiles.allowed_ip_ranges')
    .where('agents.id', '=', agentId)
    .executeTakeFirst()
  return r?.allowed_ip_ranges ? (JSON.parse(r.allowed_ip_ranges) as string[]) : undefined
}
