/**
 * What the server's limits cost an attacker and save the server, on loopback over TLS against
 * an in-process server on SQLite: rows written by one client sending failed Basic auth for 10 s, the longest `/health` stall while an IP list of 2,000 wide IPv6 ranges
 * is posted, the server process's resident memory after 20 async GETs of 100,000 events, and
 * the median time of a session login with an unknown user name and with a wrong password.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openDb } from '../packages/server/src/db/open.js'
import type { Client } from './https-client.js'
import { client, withServer } from './https-client.js'

const FLOOD_SECONDS = 10
const WIDE_RANGES = 2000
const EVENTS = 100_000
const ASYNC_GETS = 20

/** One client (8 connections) sending bad credentials for 10 s; rows are counted once it closed. */
async function failedAuthFlood(c: Client) {
  const bogus = `Basic ${Buffer.from('nobody:wrong').toString('base64')}`
  const end = performance.now() + FLOOD_SECONDS * 1000
  let sent = 0
  let limited = 0
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (performance.now() < end) {
        const r = await c.call('GET', '/api/v2/orgs/1/labels', undefined, bogus)
        sent++
        if (r.status === 429) limited++
      }
    }),
  )
  return { failedAuthRequests: sent, failedAuthRefused429: limited }
}

/** The audit events of failed authentication a closed server's store holds. */
async function failureRows(dir: string): Promise<number> {
  const { db } = await openDb(undefined, dir)
  const rows = await db
    .selectFrom('events')
    .select('uuid')
    .where('event_type', '=', 'request.authentication_failed')
    .execute()
  await db.destroy()
  return rows.length
}

/**
 * Median milliseconds of a failed session login as `username` (9 tries: sign-ins are limited to
 * 10 a minute per address).
 */
function loginTiming(username: string) {
  return async (c: Client) => {
    const times: number[] = []
    for (let i = 0; i < 9; i++) {
      const t = performance.now()
      const basic = `Basic ${Buffer.from(`${username}:wrong`).toString('base64')}`
      await c.call('POST', '/api/v2/login_users/authenticate', undefined, basic)
      times.push(performance.now() - t)
    }
    return +(times.sort((a, b) => a - b)[4] ?? NaN).toFixed(1)
  }
}

/** The longest gap between answers of a `/health` loop while the big list is posted. */
async function ipListStall(c: Client) {
  const ranges = Array.from({ length: WIDE_RANGES }, (_, i) => ({
    from_ip: `${(0x2000 + i).toString(16)}::1`,
    to_ip: `${(0x2000 + i).toString(16)}:ffff:ffff:ffff:ffff:ffff:ffff:fffe`,
  }))
  let posting = true
  let worst = 0
  const health = (async () => {
    while (posting) {
      const t = performance.now()
      await c.call('GET', '/api/v2/health')
      worst = Math.max(worst, performance.now() - t)
    }
  })()
  const t0 = performance.now()
  const r = await c.call('POST', '/api/v2/orgs/1/sec_policy/draft/ip_lists', {
    name: 'wide',
    ip_ranges: ranges,
  })
  const postMs = performance.now() - t0
  posting = false
  await health
  return {
    ipListStatus: r.status,
    ipListPostMs: Math.round(postMs),
    healthWorstMs: Math.round(worst),
  }
}

/** The events the async GETs read, written to the store before the server starts. */
async function seedEvents(dir: string) {
  const { db } = await openDb(undefined, dir)
  const notifications = JSON.stringify([{ info: { text: 'x'.repeat(1000) } }])
  const t = new Date().toISOString()
  for (let i = 0; i < EVENTS; i += 1000)
    await db
      .insertInto('events')
      .values(
        Array.from({ length: 1000 }, (_, j) => ({
          uuid: `00000000-0000-4000-8000-${String(i + j).padStart(12, '0')}`,
          org_id: 1,
          event_type: 'bench.seed',
          severity: 'info',
          status: 'success',
          timestamp: t,
          created_by: '{"system":{}}',
          resource_changes: '[]',
          notifications,
          agent_id: null,
        })),
      )
      .execute()
  await db.destroy()
}

async function asyncMemory(c: Client) {
  global.gc?.()
  const before = process.memoryUsage().rss
  let peak = before
  const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20)
  const statuses = await Promise.all(
    Array.from({ length: ASYNC_GETS }, () =>
      c.call('GET', '/api/v2/orgs/1/events', undefined).then((r) => r.status),
    ),
  )
  clearInterval(sample)
  return {
    asyncStatuses: [...new Set(statuses)],
    asyncRssBeforeMb: Math.round(before / 2 ** 20),
    asyncRssPeakMb: Math.round(peak / 2 ** 20),
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {}
  const floodDir = await mkdtemp(join(tmpdir(), 'palisade-bench-'))
  try {
    Object.assign(out, await withServer(undefined, failedAuthFlood, { dataDir: floodDir }))
    out.failedAuthRowsIn10s = await failureRows(floodDir)
  } finally {
    await rm(floodDir, { recursive: true, force: true })
  }
  Object.assign(out, await withServer(undefined, ipListStall))
  out.loginUnknownUserMs = await withServer(undefined, loginTiming('nobody'))
  out.loginWrongPasswordMs = await withServer(undefined, loginTiming('admin'))
  const dir = await mkdtemp(join(tmpdir(), 'palisade-bench-'))
  try {
    // the server migrates the store first; the events go in once it exists
    await withServer(undefined, () => Promise.resolve(), { dataDir: dir })
    await seedEvents(dir)
    Object.assign(
      out,
      await withServer(
        undefined,
        (c, url, ca, basic) => asyncMemory(asyncClient(c, url, ca, basic)),
        { dataDir: dir },
      ),
    )
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
  return out
}

/** A client whose GETs ask for an async answer (`Prefer: respond-async`). */
function asyncClient(_c: Client, url: string, ca: string, basic: string): Client {
  return client(url, ca, basic, { prefer: 'respond-async' })
}
