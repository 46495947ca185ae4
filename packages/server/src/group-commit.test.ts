import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb } from './db/open.js'
import type { OpenedDb } from './db/open.js'
import { GroupCommit } from './group-commit.js'
import type { BatchWrite } from './group-commit.js'
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

  it('stores every item that arrives together, and fails only the bad one', async () => {
    const { db, writeLanes } = opened
    expect(writeLanes).toBe(dialect === 'sqlite' ? 1 : 8)
    const batches: number[] = []
    // One statement per item here, so that one bad item fails its whole batch.
    const labels: BatchWrite<{ id: number; value: string }, string> = async (tx, items) => {
      batches.push(items.length)
      for (const { id, value } of items)
        await tx
          .insertInto('labels')
          .values({
            id,
            org_id: 1,
            key: 'gc',
            value,
            external_data_set: null,
            external_data_reference: null,
            created_at: '',
            updated_at: '',
          })
          .execute()
      return items.map((i) => `stored ${i.value}`)
    }
    const gc = new GroupCommit(db, labels, 50, writeLanes)
    const results = await Promise.allSettled([
      ...Array.from({ length: 120 }, (_, i) => gc.run({ id: 1000 + i, value: `v${i}` })),
      // the same id again: a constraint violation in the middle of a batch
      gc.run({ id: 1005, value: 'duplicate' }),
    ])
    // one of the two writes of id 1005 fails: with several lanes, either may commit first
    const rejected = results.flatMap((r, i) => (r.status === 'rejected' ? [i] : []))
    expect(rejected).toHaveLength(1)
    expect([5, 120]).toContain(rejected[0])
    expect(batches.length, 'items that arrive together share a batch').toBeLessThan(121)
    // each caller gets its own item's result
    expect(results[7]).toEqual({ status: 'fulfilled', value: 'stored v7' })
    const rows = await db.selectFrom('labels').select('value').where('key', '=', 'gc').execute()
    expect(rows).toHaveLength(120)
  })
})
