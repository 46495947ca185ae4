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
  'target_release',
  'build',
] as const
export type AgentView = Pick<AgentRow, (typeof VIEW_COLUMNS)[number]>

const readHealth = (text: string) => JSON.parse(text) as AgentHealth
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
  'id' | 'name' | 'hostname' | 'os_platform' | 'agent_type' | 'labels'
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
      'workloads.name',
      'workloads.hostname',
      'workloads.os_platform',
      'workloads.agent_type',
      'workloads.labels',
      'workloads.id as wid',
    ])
    .where('agents.org_id', '=', org)
    .execute()
  return rows.map(({ name, hostname, os_platform, agent_type, labels, wid, ...agent }) => ({
    agent: viewOf(agent),
    workload: {
      id: wid,
      name,
      hostname,
      os_platform,
      agent_type,
      labels: JSON.parse(labels) as string[],
    },
  }))
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
  a: { id: string; org: number; workloadId: string; tokenHash: string; at: string },
): Promise<void> {
  await db
    .insertInto('agents')
    .values({
      id: a.id,
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

/** Every agent's last heartbeat and health, with its hostname. */
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
      'workloads.hostname',
    ])
    .execute()
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
