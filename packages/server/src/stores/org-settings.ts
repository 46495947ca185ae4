/**
 * Per-org settings, one row per setting (its JSON value): the workload liveness timeouts and
 * the event log's retention and minimum severity. An unset setting has the vendor's default.
 */
import type { Db } from './db.js'

/** The org's stored settings of these names (unset ones are absent). */
export async function settingsOf(
  db: Db,
  org: number,
  names: readonly string[],
): Promise<Map<string, unknown>> {
  const rows = await db
    .selectFrom('org_settings')
    .select(['name', 'value'])
    .where('org_id', '=', org)
    .where('name', 'in', names.length > 0 ? names : [''])
    .execute()
  return new Map(rows.map((r) => [r.name, JSON.parse(r.value) as unknown]))
}

/** Every org's stored value of one setting. */
export async function settingOfOrgs(db: Db, name: string): Promise<Map<number, unknown>> {
  const rows = await db
    .selectFrom('org_settings')
    .select(['org_id', 'value'])
    .where('name', '=', name)
    .execute()
  return new Map(rows.map((r) => [r.org_id, JSON.parse(r.value) as unknown]))
}

/** Stores settings (each replaces its old value). */
export async function saveSettings(
  db: Db,
  org: number,
  values: Readonly<Record<string, unknown>>,
): Promise<void> {
  for (const [name, value] of Object.entries(values)) {
    await db.deleteFrom('org_settings').where('org_id', '=', org).where('name', '=', name).execute()
    await db
      .insertInto('org_settings')
      .values({ org_id: org, name, value: JSON.stringify(value) })
      .execute()
  }
}
