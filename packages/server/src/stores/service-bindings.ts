/**
 * Service bindings: which workloads run a virtual service, with the ports they moved. Not
 * provisioned: a binding applies as soon as it is made. Their JSON column is read here only.
 */
import type { Selectable } from 'kysely'
import type { Database } from '../db/schema.js'
import type { Doc } from '../validate.js'
import type { Db } from './db.js'

type BindingRecord = Selectable<Database['service_bindings']>
/** A binding with its port overrides read. */
export interface BindingRow extends Omit<BindingRecord, 'port_overrides'> {
  readonly port_overrides: Doc[]
}

const decode = (r: BindingRecord): BindingRow => ({
  ...r,
  port_overrides: JSON.parse(r.port_overrides) as Doc[],
})

/** The org's bindings, oldest first; of one virtual service or workload when asked. */
export async function serviceBindings(
  db: Db,
  org: number,
  of: { virtualServiceId?: string; workloadId?: string } = {},
): Promise<BindingRow[]> {
  let q = db.selectFrom('service_bindings').selectAll().where('org_id', '=', org)
  if (of.virtualServiceId !== undefined) q = q.where('virtual_service_id', '=', of.virtualServiceId)
  if (of.workloadId !== undefined) q = q.where('workload_id', '=', of.workloadId)
  return (await q.orderBy('created_at').orderBy('id').execute()).map(decode)
}

export async function findBinding(
  db: Db,
  org: number,
  id: string,
): Promise<BindingRow | undefined> {
  const r = await db
    .selectFrom('service_bindings')
    .selectAll()
    .where('org_id', '=', org)
    .where('id', '=', id)
    .executeTakeFirst()
  return r && decode(r)
}

export async function insertBindings(db: Db, rows: readonly BindingRow[]): Promise<void> {
  if (rows.length === 0) return
  await db
    .insertInto('service_bindings')
    .values(rows.map((r) => ({ ...r, port_overrides: JSON.stringify(r.port_overrides) })))
    .execute()
}

export async function deleteBindings(db: Db, org: number, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return
  await db.deleteFrom('service_bindings').where('org_id', '=', org).where('id', 'in', ids).execute()
}
