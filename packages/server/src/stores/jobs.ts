/**
 * Async jobs (`Prefer: respond-async`) and their datafiles: kept in the store, so a poll that
 * lands on another server node finds the job. A datafile is stored and read a page at a time
 * (`job_chunks`), so neither building nor sending one holds it whole. A job and its datafile go
 * after a day.
 */
import type { Selectable } from 'kysely'
import type { Database } from '../db/schema.js'
import type { StoredCollection } from './collection.js'
import { countOf } from './collection.js'
import type { Db } from './db.js'

/** A job as stored, without its datafile. */
export type JobRow = Omit<Selectable<Database['jobs']>, 'data'>
const JOB_COLUMNS = [
  'id',
  'org_id',
  'job_type',
  'description',
  'status',
  'requested_at',
  'requested_by',
  'terminated_at',
] as const

/** How long a job and its datafile are kept. */
const KEEP_MS = 24 * 3_600_000

const jobsOf = (db: Db, org: number) => db.selectFrom('jobs').where('org_id', '=', org)

/**
 * Stores a job and its datafile, a page at a time from `pages`; jobs older than a day go first.
 * The job is `running` until its last page is stored, then `done`, terminated then.
 */
export async function insertJob(
  db: Db,
  job: JobRow,
  pages: AsyncIterable<readonly unknown[]>,
): Promise<void> {
  await pruneJobs(db, Date.parse(job.requested_at))
  await db
    .insertInto('jobs')
    .values({ ...job, status: 'running', terminated_at: null, data: null })
    .execute()
  let seq = 0
  for await (const page of pages) {
    if (page.length === 0) continue
    const items = JSON.stringify(page).slice(1, -1)
    await db.insertInto('job_chunks').values({ job_id: job.id, seq: seq++, items }).execute()
  }
  await db
    .updateTable('jobs')
    .set({ status: 'done', terminated_at: new Date().toISOString() })
    .where('id', '=', job.id)
    .execute()
}

/** Deletes jobs, with their datafiles, older than a day at `nowMs`; returns how many. */
export async function pruneJobs(db: Db, nowMs: number): Promise<number> {
  const cutoff = new Date(nowMs - KEEP_MS).toISOString()
  const old = db.selectFrom('jobs').select('id').where('requested_at', '<', cutoff)
  await db.deleteFrom('job_chunks').where('job_id', 'in', old).execute()
  const r = await db.deleteFrom('jobs').where('requested_at', '<', cutoff).executeTakeFirst()
  return Number(r.numDeletedRows)
}

export async function findJob(db: Db, org: number, id: string): Promise<JobRow | undefined> {
  return jobsOf(db, org).select(JOB_COLUMNS).where('id', '=', id).executeTakeFirst()
}

/**
 * A job's datafile as JSON text, a page at a time (read as it is sent); undefined when the org
 * has no such job.
 */
export async function jobData(
  db: Db,
  org: number,
  id: string,
): Promise<AsyncIterable<string> | undefined> {
  if (!(await findJob(db, org, id))) return undefined
  return (async function* () {
    yield '['
    for (let seq = 0; ; seq++) {
      const chunk = await db
        .selectFrom('job_chunks')
        .select('items')
        .where('job_id', '=', id)
        .where('seq', '=', seq)
        .executeTakeFirst()
      if (!chunk) break
      yield seq === 0 ? chunk.items : `,${chunk.items}`
    }
    yield ']'
  })()
}

/** The org's jobs, newest first, of one type when asked. */
export function jobsMatching(db: Db, org: number, jobType?: string): StoredCollection<JobRow> {
  let query = jobsOf(db, org)
  if (jobType !== undefined) query = query.where('job_type', '=', jobType)
  return {
    count: () => countOf(query),
    read: (limit) =>
      query
        .select(JOB_COLUMNS)
        .orderBy('requested_at', 'desc')
        .orderBy('id')
        .limit(limit)
        .execute(),
  }
}

/** Deletes a job and its datafile; resolves with whether there was one. */
export async function deleteJob(db: Db, org: number, id: string): Promise<boolean> {
  if (!(await findJob(db, org, id))) return false
  await db.deleteFrom('job_chunks').where('job_id', '=', id).execute()
  const r = await db
    .deleteFrom('jobs')
    .where('org_id', '=', org)
    .where('id', '=', id)
    .executeTakeFirst()
  return Number(r.numDeletedRows) > 0
}
