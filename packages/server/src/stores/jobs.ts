/**
 * Async jobs (`Prefer: respond-async`) and their datafiles: kept in the store, so a poll that
 * lands on another server node finds the job. A job and its datafile go after a day.
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

/** Stores a finished job with its datafile; jobs older than a day go first. */
export async function insertJob(db: Db, job: JobRow, data: readonly unknown[]): Promise<void> {
  const cutoff = new Date(Date.parse(job.requested_at) - KEEP_MS).toISOString()
  await db.deleteFrom('jobs').where('requested_at', '<', cutoff).execute()
  await db
    .insertInto('jobs')
    .values({ ...job, data: JSON.stringify(data) })
    .execute()
}

export async function findJob(db: Db, org: number, id: string): Promise<JobRow | undefined> {
  return jobsOf(db, org).select(JOB_COLUMNS).where('id', '=', id).executeTakeFirst()
}

/** A job's datafile as stored (JSON text), sent as it is. */
export async function jobData(db: Db, org: number, id: string): Promise<string | undefined> {
  const r = await jobsOf(db, org).select('data').where('id', '=', id).executeTakeFirst()
  return r?.data ?? undefined
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
  const r = await db
    .deleteFrom('jobs')
    .where('org_id', '=', org)
    .where('id', '=', id)
    .executeTakeFirst()
  return Number(r.numDeletedRows) > 0
}
