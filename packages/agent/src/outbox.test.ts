import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Outbox } from './outbox.js'

describe('outbox', () => {
  const dirs: string[] = []
  const box = (maxBytes?: number) => {
    const dir = mkdtempSync(join(tmpdir(), 'palisade-outbox-'))
    dirs.push(dir)
    const path = join(dir, 'x.jsonl')
    return { path, box: new Outbox(path, join(dir, 'x.offset'), { maxBytes }) }
  }
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  })

  it('loses nothing across failed sends and a restart; re-sends only the batch in flight', async () => {
    const { path, box: a } = box()
    await a.append([{ n: 1 }, { n: 2 }, { n: 3 }])
    const got: unknown[] = []
    await expect(a.upload(() => Promise.reject(new Error('server away')), 2)).rejects.toThrow(
      'server away',
    )
    expect(got).toEqual([])
    // the server stored the first batch, but the agent died before it moved the offset
    await a
      .upload((b) => {
        got.push(...b)
        return Promise.reject(new Error('crash'))
      }, 2)
      .catch(() => undefined)
    const b = new Outbox(path, path.replace('x.jsonl', 'x.offset'))
    await b.append([{ n: 4 }])
    await b.upload((batch) => Promise.resolve(void got.push(...batch)), 2)
    // at least once: the server drops the repeat by its uuid
    expect(got).toEqual([{ n: 1 }, { n: 2 }, { n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }])
    await b.upload((batch) => Promise.resolve(void got.push(...batch)), 2)
    expect(got).toHaveLength(6)
  })

  it('stays within its bound, dropping the oldest and counting them', async () => {
    const { path, box: o } = box(1000)
    for (let i = 0; i < 100; i++) await o.append([{ i, pad: 'x'.repeat(30) }])
    expect(readFileSync(path).length).toBeLessThanOrEqual(1000)
    const sent: { i: number }[] = []
    await o.upload((b) => Promise.resolve(void sent.push(...(b as { i: number }[]))), 500)
    const dropped = await o.dropped()
    expect(dropped).toBeGreaterThan(0)
    expect(sent.length + dropped).toBe(100)
    // the newest survive, in order
    expect(sent.map((s) => s.i)).toEqual(
      Array.from({ length: sent.length }, (_, k) => 100 - sent.length + k),
    )
  })
})
