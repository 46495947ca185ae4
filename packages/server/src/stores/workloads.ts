/**
 * Workloads: hosts with their labels and addresses, managed by an agent or described through
 * the API. Their JSON columns (labels, interfaces) are read here and nowhere else.
 */
import type { Workload } from '@palisade/model'
import type { Selectable, Updateable } from 'kysely'
import type { Database } from '../db/schema.js'
import { workloadHref } from '../hrefs.js'
import type { WorkloadInterface } from '../validate.js'
import type { Db } from './db.js'

/** A workload as stored. */
export type WorkloadRecord = Selectable<Database['workloads']>
/** The JSON columns, read here and nowhere else. */
type JsonColumn = 'labels' | 'interfaces' | 'ignored_interface_names'
/** A workload with its labels (hrefs), interfaces and ignored interface names read. */
export interface WorkloadRow extends Omit<WorkloadRecord, JsonColumn> {
  readonly labels: string[]
  readonly interfaces: readonly WorkloadInterface[]
  readonly ignored_interface_names: string[]
}
type WorkloadFields = Omit<Updateable<Database['workloads']>, JsonColumn> & {
  readonly labels?: readonly string[]
  readonly interfaces?: readonly WorkloadInterface[]
  readonly ignored_interface_names?: readonly string[]
}

/**
 * What clients say of a workload that Palisade keeps as given, shows, and filters on (null:
 * not set). An agent reports none of them; for a managed workload they are its owner's to set.
 */
export const WORKLOAD_DETAILS = [
  'public_ip',
  'service_principal_name',
  'distinguished_name',
  'service_provider',
  'data_center',
  'data_center_zone',
  'os_id',
  'os_detail',
] as const
export type WorkloadDetail = (typeof WORKLOAD_DETAILS)[number]
/** A workload to insert: the details and `online` may be left out (unset). */
type Optional = WorkloadDetail | 'online' | 'ignored_interface_names' | 'policy_error'
export type NewWorkload = Omit<WorkloadRow, Optional> & Partial<Pick<WorkloadRow, Optional>>

const readLabels = (text: string) => JSON.parse(text) as string[]
const readInterfaces = (text: string) => JSON.parse(text) as WorkloadInterface[]
const readIgnored = (text: string | null) => (text ? (JSON.parse(text) as string[]) : [])

/** The org's workloads. */
const workloadsOf = (db: Db, org: number) => db.selectFrom('workloads').where('org_id', '=', org)

function decode<
  R extends Pick<WorkloadRecord, 'labels' | 'interfaces' | 'ignored_interface_names'>,
>(r: R): Omit<R, JsonColumn> & Pick<WorkloadRow, JsonColumn> {
  return {
    ...r,
    labels: readLabels(r.labels),
    interfaces: readInterfaces(r.interfaces),
    ignored_interface_names: readIgnored(r.ignored_interface_names),
  }
}

/** The stored form of a workload's fields; the audit log shows workloads in this form. */
export function workloadRecord<W extends WorkloadFields>(
  w: W,
): Omit<W, JsonColumn> & Partial<Pick<WorkloadRecord, JsonColumn>> {
  return {
    ...w,
    ...(w.labels && { labels: JSON.stringify(w.labels) }),
    ...(w.interfaces && { interfaces: JSON.stringify(w.interfaces) }),
    ...(w.ignored_interface_names && {
      ignored_interface_names: JSON.stringify(w.ignored_interface_names),
    }),
  }
}

// ---- the policy model of a workload ----

/** The columns a workload's policy model is made of. */
export const MODEL_COLUMNS = [
  'workloads.id',
  'workloads.name',
  'workloads.agent_type',
  'workloads.os_platform',
  'workloads.enforcement_mode',
  'workloads.visibility_level',
  'workloads.labels',
  'workloads.interfaces',
  'workloads.ignored_interface_names',
] as const
type ModelField = (typeof MODEL_COLUMNS)[number] extends `workloads.${infer F}` ? F : never
/** The columns of a workload's model as stored. */
export type ModelRecord = Pick<WorkloadRecord, ModelField>

/** What a workload's model is made of, as one string: equal strings make equal models. */
export const modelKey = (r: ModelRecord) =>
  MODEL_COLUMNS.map((c) => r[c.slice('workloads.'.length) as ModelField]).join('\0')

/** A workload as the policy model sees it. */
export function workloadModel(org: number, r: Pick<WorkloadRow, ModelField>): Workload {
  return {
    href: workloadHref(org, r.id),
    name: r.name,
    agentType: r.agent_type === 'endpoint' ? 'endpoint' : 'server',
    osPlatform: r.os_platform as Workload['osPlatform'],
    enforcementMode: r.enforcement_mode as Workload['enforcementMode'],
    // The vendor's newer name for full detail.
    visibilityLevel: (r.visibility_level === 'enhanced_data_collection'
      ? 'flow_full_detail'
      : r.visibility_level) as Workload['visibilityLevel'],
    labels: r.labels ?? [],
    // An ignored interface's addresses are not the workload's in its peers' policy.
    interfaces: (r.interfaces ?? [])
      .filter((i) => !(r.ignored_interface_names ?? []).includes(i.name))
      .map((i) => ({
        name: i.name,
        address: i.address,
        ...(typeof i.cidr_block === 'number' && { cidrBlock: i.cidr_block }),
      })),
  }
}

/** The model of a workload read as stored. */
export const modelOf = (org: number, r: ModelRecord): Workload => workloadModel(org, decode(r))

/** The models of every workload of the org. */
export async function workloadModels(db: Db, org: number): Promise<Workload[]> {
  const rows = await workloadsOf(db, org).select(MODEL_COLUMNS).execute()
  return rows.map((r) => modelOf(org, r))
}

// ---- reads and writes ----

export async function findWorkload(
  db: Db,
  org: number,
  id: string,
): Promise<WorkloadRow | undefined> {
  const w = await workloadsOf(db, org).selectAll().where('id', '=', id).executeTakeFirst()
  return w && decode(w)
}

/** The org's workloads, oldest first, or in the store's own order when that does not matter. */
export async function listWorkloads(
  db: Db,
  org: number,
  order: 'created' | 'any' = 'created',
): Promise<WorkloadRow[]> {
  let query = workloadsOf(db, org).selectAll()
  if (order === 'created') query = query.orderBy('created_at')
  return (await query.execute()).map(decode)
}

export async function workloadIds(db: Db, org: number): Promise<string[]> {
  const rows = await workloadsOf(db, org).select('id').execute()
  return rows.map((w) => w.id)
}

/** The ids of the org's workloads that carry a label. */
export async function workloadsLabelled(db: Db, org: number, href: string): Promise<string[]> {
  const rows = await workloadsOf(db, org).select(['id', 'labels']).execute()
  return rows.filter((w) => readLabels(w.labels).includes(href)).map((w) => w.id)
}

export async function insertWorkload(db: Db, w: NewWorkload): Promise<void> {
  await db
    .insertInto('workloads')
    .values(workloadRecord(w) as WorkloadRecord)
    .execute()
}

/** Changes a workload's fields; resolves with it as it is now, as stored. */
export async function updateWorkload(
  db: Db,
  id: string,
  fields: WorkloadFields,
): Promise<WorkloadRecord> {
  return db
    .updateTable('workloads')
    .set(workloadRecord(fields))
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow()
}

/** Removes a workload, and the bindings of virtual services to it (they bind nothing now). */
export async function deleteWorkload(db: Db, id: string): Promise<void> {
  await db.deleteFrom('service_bindings').where('workload_id', '=', id).execute()
  await db.deleteFrom('workloads').where('id', '=', id).execute()
}

/**
 * Moves a workload to these addresses; resolves with the ones it had, or undefined when it had
 * these already (and nothing was written).
 */
export async function moveWorkload(
  db: Db,
  id: string,
  interfaces: readonly WorkloadInterface[],
  at: string,
): Promise<WorkloadInterface[] | undefined> {
  const text = JSON.stringify(interfaces)
  const w = await db
    .selectFrom('workloads')
    .select('interfaces')
    .where('id', '=', id)
    .executeTakeFirstOrThrow()
  if (w.interfaces === text) return undefined
  await db
    .updateTable('workloads')
    .set({ interfaces: text, updated_at: at })
    .where('id', '=', id)
    .execute()
  return readInterfaces(w.interfaces)
}
