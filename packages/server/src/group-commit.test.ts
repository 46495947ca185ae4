import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb } from './db/open.js'
import type { OpenedDb } from './db/open.js'
import { GroupCommit } from './group-commit.js'
import type { TestPostgres } from './postgres.fixture.js'
import { startTestPostgres } from './postgres.fixture.js'

// SQLite takes one batch at a time; PostgreSQL several at once, from its pool.
describe.each(['sqlite', 'postgres'])('group commit on %s', (dialect) => {
  let dir: string
  let opened: OpenedDb
  let pg: TestPostgres | undefined
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'palisade-gc-'))
    if (dialect === 'postgres') pg = await startTestPostgres()
    opened = await openDb(pg ? await pg.freshDatabase() : undefined, dir)
  })
  afterAll(async () => {
    await opened?.db.destroy()
    await pg?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('stores every write that arrives together, and fails only the bad one', async () => {
    const { db, writeLanes } = opened
    expect(writeLanes).toBe(dialect === 'sqlite' ? 1 : 8)
    const gc = new GroupCommit(db, 50, writeLanes)
    const label =
      (value: string, id?: number) => (tx: Parameters<Parameters<GroupCommit['run']>[0]>[0]) =>
        tx
          .insertInto('labels')
          .values({
            ...(id !== undefined && { id }),
            org_id: 1,
            key: 'gc',
            value,
            external_data_set: null,
            external_data_reference: null,
            created_at: '',
            updated_at: '',
          })
          .execute()
    const results = await Promise.allSettled([
      ...Array.from({ length: 120 }, (_, i) => gc.run(label(`v${i}`, 1000 + i))),
      // the same id again: a constraint violation in the middle of a batch
      gc.run(label('duplicate', 1005)),
    ])
    // one of the two writes of id 1005 fails: with several lanes, either may commit first
    const rejected = results.flatMap((r, i) => (r.status === 'rejected' ? [i] : []))
    expect(rejected).toHaveLength(1)
    expect([5, 120]).toContain(rejected[0])
    const rows = await db.selectFrom('labels').select('value').where('key', '=', 'gc').execute()
    expect(rows).toHaveLength(120)
    // each caller gets what its own write returned
    const counted = await Promise.all(
      [1000, 1001, 99_999].map((id) =>
        gc.run(async (tx) =>
          Number(
            (
              await tx
                .updateTable('labels')
                .set({ updated_at: 'now' })
                .where('id', '=', id)
                .executeTakeFirst()
            ).numUpdatedRows,
          ),
        ),
      ),
    )
    expect(counted).toEqual([1, 1, 0])
  })
})
