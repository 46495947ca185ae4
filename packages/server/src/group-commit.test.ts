import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb } from './db/open.js'
import type { OpenedDb } from './db/open.js'
import { GroupCommit } from './group-commit.js'

describe('group commit', () => {
  let dir: string
  let opened: OpenedDb
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'palisade-gc-'))
    opened = await openDb(undefined, dir)
  })
  afterAll(async () => {
    await opened.db.destroy()
    await rm(dir, { recursive: true, force: true })
  })

  it('stores every write that arrives together, and fails only the bad one', async () => {
    const { db } = opened
    const gc = new GroupCommit(db, 50)
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
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(1)
    expect(results.at(-1)?.status).toBe('rejected')
    const rows = await db.selectFrom('labels').select('value').where('key', '=', 'gc').execute()
    expect(rows).toHaveLength(120)
  })
})
