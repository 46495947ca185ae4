/**
 * `palisade demo`, run as a newcomer runs it: the command starts, and while it runs the test
 * checks through the console's own port (the forward into the lab) that every host is synced
 * in the mode its scopes give, that the connections the estate expects open and the others do
 * not (probed independently, from peers of the test's own), that flows and a tampering event
 * arrive; then `palisade demo --down` from another process leaves no namespace, process, file
 * or rule behind, and this machine's own firewall is as it was.
 */
import type { AgentStatus } from '@palisade/agent'
import { readJson, runLocal, statePaths } from '@palisade/agent'
import type { DemoState } from '@palisade/lab'
import { DEMO_PREFIX, LabPeer, waitFor } from '@palisade/lab'
import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, readlink, rm, stat } from 'node:fs/promises'
import { request } from 'node:https'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const CLI = fileURLToPath(new URL('../../packages/cli/src/main.ts', import.meta.url))
const palisade = (args: string[]) =>
  spawn(process.execPath, ['--conditions=source', '--import', 'tsx', CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })

/** Starts `palisade demo ARGS` and waits until it says it is up; its output so far, as it grows. */
async function startDemo(args: string[]): Promise<{ child: ChildProcess; out: () => string }> {
  const child = palisade(['demo', ...args])
  let out = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the demo is not up after 120 s: ${out.slice(-1500)}`)),
      120_000,
    )
    const seen = (b: Buffer) => {
      out += b.toString()
      if (out.includes('Palisade demo is up')) {
        clearTimeout(timer)
        resolve()
      }
    }
    child.stdout?.on('data', seen)
    child.stderr?.on('data', seen)
    child.once('close', (code) =>
      reject(new Error(`the demo ended (${code}): ${out.slice(-1500)}`)),
    )
  })
  return { child, out: () => out }
}

/** `palisade demo --down --data-dir DIR` to its end: exit code and output. */
const down = (dir: string) =>
  new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = palisade(['demo', '--down', '--data-dir', dir])
    let out = ''
    child.stdout?.on('data', (b: Buffer) => (out += b.toString()))
    child.stderr?.on('data', (b: Buffer) => (out += b.toString()))
    child.on('close', (code) => resolve({ code, out }))
  })

/** The demo's network namespaces now, by inode: a process in one is found even once unnamed. */
async function demoNamespaces(): Promise<Set<string>> {
  const names = (await readdir('/run/netns')).filter((n) => n.startsWith(DEMO_PREFIX))
  return new Set(
    await Promise.all(names.map(async (n) => `net:[${(await stat(`/run/netns/${n}`)).ino}]`)),
  )
}

/** What of a demo is still there: its namespaces, any process in them, its files. */
async function leftovers(dir: string, socket: string, namespaces: Set<string>): Promise<string[]> {
  const named = (await readdir('/run/netns').catch(() => [] as string[])).filter((n) =>
    n.startsWith(DEMO_PREFIX),
  )
  const inside: string[] = []
  for (const pid of (await readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
    const ns = await readlink(`/proc/${pid}/ns/net`).catch(() => '')
    if (namespaces.has(ns))
      inside.push(
        `pid ${pid}: ${(await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ')}`,
      )
  }
  return [...named, ...inside, ...[dir, socket].filter((f) => existsSync(f))]
}

interface Flow {
  src: { ip: string }
  dst: { ip: string }
  service: { port?: number }
  policy_decision: string
  flow_direction: string
  reports: { source: { policy_decision: string } | null; destination: unknown }
}

/** This machine's own rulesets, to see that the demo never touched them. */
const rootRules = async () =>
  (
    await Promise.all(
      [
        ['nft', ['list', 'ruleset']],
        ['iptables-legacy-save', []],
        ['iptables-nft-save', []],
      ].map(async ([cmd, args]) =>
        // The counters move with this machine's own traffic, and iptables-save's comments carry
        // the time it ran (where the root namespace holds such tables); the rules must not.
        (await runLocal(cmd as string, args as string[])).stdout
          .replace(/\[\d+:\d+\]|packets \d+ bytes \d+/g, '')
          .replace(/^# (Generated|Completed) .*$/gm, ''),
      ),
    )
  ).join('\n')

describe('palisade demo: a live estate, and nothing left after --down', () => {
  let dir: string
  let demo: ChildProcess
  let out = () => ''
  let state: DemoState
  let boot: { api_user: string; api_secret: string; ca_cert: string; url: string }
  let ca: string
  let rulesBefore: string
  const peers: LabPeer[] = []

  const api = (method: string, path: string, body?: unknown) =>
    new Promise<{ status: number; body: unknown }>((resolve, reject) => {
      const req = request(
        `${boot.url}${path}`,
        {
          method,
          ca,
          auth: `${boot.api_user}:${boot.api_secret}`,
          headers: {
            accept: 'application/json',
            ...(body !== undefined && { 'content-type': 'application/json' }),
          },
        },
        (res) => {
          let text = ''
          res.on('data', (c: Buffer) => (text += c.toString()))
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              body: text ? (JSON.parse(text) as unknown) : undefined,
            }),
          )
        },
      )
      req.on('error', reject)
      req.end(body === undefined ? undefined : JSON.stringify(body))
    })

  beforeAll(async () => {
    rulesBefore = await rootRules()
    dir = join(await mkdtemp(join(tmpdir(), 'palisade-demo-test-')), 'demo-data')
    const started = performance.now()
    const d = await startDemo(['--data-dir', dir, '--listen', '127.0.0.1:0', '--tamper-every', '5'])
    demo = d.child
    out = d.out
    console.log(`demo up in ${Math.round(performance.now() - started)} ms`)
    state = JSON.parse(await readFile(join(dir, 'demo.json'), 'utf8')) as DemoState
    boot = JSON.parse(await readFile(join(dir, 'bootstrap.json'), 'utf8')) as typeof boot
    ca = await readFile(boot.ca_cert, 'utf8')
  }, 150_000)

  afterAll(async () => {
    for (const p of peers) await p.stop()
    // Whatever happened above, nothing of the demo may stay.
    if (demo && demo.exitCode === null && demo.signalCode === null) demo.kill('SIGKILL')
    if (dir) await down(dir)
    if (dir) await rm(join(dir, '..'), { recursive: true, force: true })
  }, 60_000)

  it('prints where the console is, and serves it on this machine', async () => {
    expect(state.console_url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/)
    expect(boot.url).toBe(state.console_url)
    expect(out()).toContain(`console:  ${state.console_url}`)
    expect(out()).toContain(`the password is in ${join(dir, 'bootstrap.json')}`)
    expect((await api('GET', '/api/v2/product_version')).status).toBe(200)
  })

  it('has every host synced, in the mode its coexistence scope gives, on every backend', async () => {
    const r = await api('GET', '/api/v2/orgs/1/workloads?managed=true')
    const list = r.body as {
      hostname: string
      firewall_coexistence: { illumio_primary: boolean } | null
      agent: { status: { security_policy_sync_state: string } }
    }[]
    expect(list.map((w) => w.hostname).sort()).toEqual(state.hosts.map((h) => h.name).sort())
    const modeOf = (c: { illumio_primary: boolean } | null) =>
      c === null
        ? 'exclusive'
        : c.illumio_primary
          ? 'coexistence_primary'
          : 'coexistence_non_primary'
    for (const h of state.hosts) {
      const w = list.find((x) => x.hostname === h.name)
      expect(w?.agent.status.security_policy_sync_state, h.name).toBe('synced')
      expect(modeOf(w?.firewall_coexistence ?? null), h.name).toBe(h.mode)
      const s = await readJson<AgentStatus>(statePaths(join(dir, 'agents', h.name)).status)
      expect([s?.backend, s?.policy?.mode, s?.policy?.enforcementMode], h.name).toEqual([
        h.backend,
        h.mode,
        h.enforcement,
      ])
    }
    expect(new Set(state.hosts.map((h) => h.mode))).toEqual(
      new Set(['exclusive', 'coexistence_primary', 'coexistence_non_primary']),
    )
    expect(new Set(state.hosts.map((h) => h.backend))).toEqual(
      new Set(['nftables', 'iptables-nft', 'iptables-legacy']),
    )
    expect(new Set(state.hosts.map((h) => h.foreign))).toEqual(
      new Set(['firewalld', 'docker', 'ufw', 'hand-written']),
    )
  })

  it('opens the connections the estate expects and no others', async () => {
    const host = new Map(state.hosts.map((h) => [h.name, h]))
    const seen = new Map<string, string>()
    const key = (f: DemoState['flows'][number]) => `${f.from} -> ${f.to}:${f.port}`
    for (const from of new Set(state.flows.map((f) => f.from))) {
      const peer = LabPeer.start(host.get(from)?.ns ?? '')
      peers.push(peer)
      const flows = state.flows.filter((f) => f.from === from)
      const got = await peer.probe(
        flows.map((f) => ({
          proto: 'tcp' as const,
          host: host.get(f.to)?.ip4 ?? '',
          port: f.port,
        })),
        1000,
      )
      flows.forEach((f, i) => seen.set(key(f), got[i] === 'open' ? 'open' : 'closed'))
    }
    // the test's own peers go now: what is left in the demo's namespaces later is the demo's
    for (const p of peers.splice(0)) await p.stop()
    expect(state.flows.map((f) => `${key(f)} ${seen.get(key(f))}`)).toEqual(
      state.flows.map((f) => `${key(f)} ${f.open ? 'open' : 'closed'}`),
    )
    expect(state.flows.filter((f) => f.open).length).toBeGreaterThan(0)
    expect(state.flows.filter((f) => !f.open).length).toBeGreaterThan(0)
  })

  it('delivers flows: allowed, potentially blocked and blocked, and none that a foreign rule took first', async () => {
    const ipOf = (n: string) => state.hosts.find((h) => h.name === n)?.ip4
    const query = async () => {
      const q = await api('POST', '/api/v2/orgs/1/traffic_flows/async_queries', {
        start_date: new Date(Date.now() - 3600_000).toISOString(),
        end_date: new Date(Date.now() + 60_000).toISOString(),
        max_results: 10_000,
      })
      const href = String((q.body as { href: string }).href)
      const done = await waitFor(
        'the traffic query',
        async () => {
          const s = (await api('GET', `/api/v2${href}`)).body as { status: string; result: string }
          return s.status === 'completed' ? s : undefined
        },
        10_000,
        200,
      )
      return (await api('GET', `/api/v2${done.result}`)).body as Flow[]
    }
    const between = (list: Flow[], from: string, to: string, port: number) =>
      list
        .filter((f) => f.src.ip === ipOf(from) && f.dst.ip === ipOf(to) && f.service.port === port)
        .map(
          (f) =>
            `${f.flow_direction} ${f.policy_decision}${f.reports.source && f.reports.destination ? ` (source: ${f.reports.source.policy_decision})` : ''}`,
        )
    const flows = await waitFor(
      'the flows of the estate to arrive',
      async () => {
        const list = await query()
        return between(list, 'web1', 'db1', 5432).length > 0 &&
          between(list, 'web2', 'db1', 3306).length > 0 &&
          between(list, 'web2', 'db2', 6379).some((x) => x.includes('(source:')) &&
          between(list, 'web2', 'db1', 9100).length > 0
          ? list
          : undefined
      },
      30_000,
      2000,
    )
    // allowed, as web1 saw it leave; on db1 ufw accepted it before our chains: never seen there
    expect(between(flows, 'web1', 'db1', 5432)).toEqual(['outbound allowed'])
    // the deny rule, enforced where web2 (selective) sends it
    expect(between(flows, 'web2', 'db1', 3306)).toEqual(['outbound blocked'])
    // no rule allows it, and neither end enforces that: potentially blocked, seen by both ends
    // and shown once
    expect(between(flows, 'web2', 'db2', 6379)).toEqual([
      'inbound potentially_blocked (source: potentially_blocked)',
    ])
    // our policy would block it on db1, but ufw accepts it first: only web2 reports it
    expect(between(flows, 'web2', 'db1', 9100)).toEqual(['outbound potentially_blocked'])
    expect(new Set(flows.map((f) => f.policy_decision))).toEqual(
      new Set(['allowed', 'potentially_blocked', 'blocked']),
    )
  })

  it('tampers now and then; the agent repairs it and the server hears of it', async () => {
    // the first tampering is on the first host, web1 (nftables)
    const web1 = statePaths(join(dir, 'agents', 'web1')).status
    const seen = await waitFor(
      'the tampering with web1, its repair and its event on the server',
      async () => {
        const events = (await api('GET', '/api/v2/orgs/1/events?event_type=agent.tampering'))
          .body as unknown[]
        const repairs = (await readJson<AgentStatus>(web1))?.enforcement.tampering.repairs ?? 0
        const said = out().includes(
          'tampered with web1: nft insert rule inet palisade input tcp dport 65000 accept',
        )
        return events.length > 0 && repairs > 0 && said ? { events, repairs } : undefined
      },
      30_000,
      500,
    )
    expect(JSON.stringify(seen.events)).toContain('web1')
  })

  it('--down, from another process, stops the demo and leaves no namespace, process, file or rule behind', async () => {
    const port = Number(new URL(state.console_url).port)
    const namespaces = await demoNamespaces()
    expect(namespaces.size).toBe(state.hosts.length + 2)
    const r = await down(dir)
    expect(r.code, r.out).toBe(0)
    expect(r.out).toContain(`stopped the demo (pid ${state.pid})`)
    const exit = await new Promise<number | null>((resolve) =>
      demo.exitCode !== null ? resolve(demo.exitCode) : demo.on('close', resolve),
    )
    expect(exit).toBe(0)
    expect(out()).toContain('done: no namespace, process or rule of the demo is left')
    expect(await leftovers(dir, state.socket, namespaces)).toEqual([])
    const refused = await new Promise<string>((resolve) => {
      const c = createConnection({ host: '127.0.0.1', port })
      c.once('connect', () => resolve('open'))
      c.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'))
    })
    expect(refused).toBe('ECONNREFUSED')
    expect(await rootRules()).toBe(rulesBefore)
  })

  it('--down finds and removes what a demo that was killed left', async () => {
    const killed = await startDemo(['--data-dir', dir, '--listen', '127.0.0.1:0', '--hosts', '1'])
    killed.child.kill('SIGKILL')
    await new Promise((resolve) => killed.child.once('close', resolve))
    // its server and agent outlive it, in namespaces nobody deletes
    const namespaces = await demoNamespaces()
    const left = await leftovers(dir, state.socket, namespaces)
    expect(left).toContain(`${DEMO_PREFIX}srv`)
    expect(left.some((p) => p.includes(' server --listen '))).toBe(true)
    expect(left.some((p) => p.includes(' agent run '))).toBe(true)
    const r = await down(dir)
    expect(r.code, r.out).toBe(0)
    expect(r.out).toContain('deleted namespaces')
    expect(r.out).toContain(`deleted ${dir}`)
    expect(await leftovers(dir, state.socket, namespaces)).toEqual([])
    expect(await rootRules()).toBe(rulesBefore)
  })
})
