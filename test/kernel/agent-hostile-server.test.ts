/**
 * A hostile policy server: a fake server in this test, speaking the agent protocol, sends a
 * corpus of injections to a real agent in a lab namespace. For each one the agent must refuse
 * the policy (schema, renderer grammar or reply bound), keep the previous ruleset in the
 * kernel, report itself unhealthy with one event, keep running, and send nothing of the
 * host's files to the server.
 */
import { hostPolicyFromLocalFile } from '@palisade/model'
import type { LabHost } from '@palisade/lab'
import { FakePolicyServer, Lab, LabAgent, LabPeer, waitFor } from '@palisade/lab'
import { randomUUID } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const AGENT = 'a-hostile'
const PORT = 18080
const CANARY = `palisade-canary-${randomUUID()}`
const canaryFile = join(tmpdir(), `palisade-canary-${process.pid}.txt`)

/** The good policy the agent holds before the injections: port 8080 allowed from the lab. */
const GOOD = JSON.parse(
  JSON.stringify(
    hostPolicyFromLocalFile({
      version: 1,
      enforcement_mode: 'full',
      visibility_level: 'flow_off',
      rules: [
        {
          action: 'allow',
          direction: 'inbound',
          peers: ['198.18.0.0/24'],
          services: [{ proto: 6, port: 8080 }],
        },
      ],
    }),
  ),
) as Record<string, unknown> & { rules: Record<string, unknown>[] }

type Policy = typeof GOOD
const rule0 = (p: Policy) => p.rules[0] as Record<string, unknown>
/** The good policy, version 2, with `edit` applied to a copy. */
const edited = (edit: (p: Policy) => void): string => {
  const p = JSON.parse(JSON.stringify(GOOD)) as Policy
  p.version = 2
  edit(p)
  return JSON.stringify(p)
}
const withPeers = (v4: unknown[], v6: unknown[] = []) =>
  edited((p) => void (rule0(p).peers = { v4, v6 }))
const withService = (s: Record<string, unknown>) => edited((p) => void (rule0(p).services = [s]))
const digits = '9'.repeat(70_000)

/** Each injection: the policy text sent (the reply is `{"hash":…,"policy":TEXT}`). */
const CORPUS: readonly (readonly [string, () => string])[] = [
  [
    'peer: newline and a foreign accepting table',
    () =>
      withPeers([
        '10.9.9.9/32 } ; }\n}\ntable inet injected { chain c { type filter hook input priority 0; policy accept; tcp dport 31337 accept } }\n',
      ]),
  ],
  ['peer: include "/etc/shadow"', () => withPeers(['include "/etc/shadow"'])],
  ['peer: an address, then include', () => withPeers(['10.0.0.1/32\ninclude "/etc/shadow"'])],
  ['peer: include a canary file', () => withPeers([`10.0.0.1 }\ninclude "${canaryFile}"\n{`])],
  ['peer: define and use', () => withPeers(['define x = 0.0.0.0/0', '$x'])],
  ['peer: } ;', () => withPeers(['} ;'])],
  ['peer: braces', () => withPeers(['{ 0.0.0.0/0 }'])],
  ['peer: iptables arguments', () => withPeers(['0.0.0.0/0 -j ACCEPT'])],
  ['peer: an ipset restore line', () => withPeers(['10.0.0.1\nadd palisade-x 0.0.0.0/0'])],
  ['peer: IPv6 with a statement', () => withPeers([], ['::/0; accept'])],
  ['peer: one megabyte', () => withPeers(['1'.repeat(1_000_000)])],
  ['peer: a number', () => withPeers([167772161])],
  [
    'peers: more than a rule may hold (1,000,001)',
    () =>
      withPeers(
        Array.from({ length: 1_000_001 }, (_, i) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`),
      ),
  ],
  [
    'version: 70,000 digits',
    () => edited(() => undefined).replace('"version":2', `"version":${digits}`),
  ],
  [
    'port: 70,000 digits',
    () => withService({ proto: 6, port: 1 }).replace('"port":1}', `"port":${digits}}`),
  ],
  ['proto: a statement', () => withService({ proto: 'tcp; accept', port: 80 })],
  ['proto: out of range', () => withService({ proto: 999, port: 80 })],
  ['port: out of range', () => withService({ proto: 6, port: 70_000 })],
  ['port: negative', () => withService({ proto: 6, port: -1 })],
  ['port: a fraction', () => withService({ proto: 6, port: 80.5 })],
  ['port: a string with a statement', () => withService({ proto: 6, port: '80 accept' })],
  ['action: a statement', () => edited((p) => void (rule0(p).action = 'accept; flush ruleset'))],
  ['enforcement mode: unknown', () => edited((p) => void (p.enforcementMode = 'full; accept'))],
  ['an unknown property', () => edited((p) => void (p.include = '/etc/shadow'))],
  ['a __proto__ property', () => edited(() => undefined).replace('{', '{"__proto__":{"x":1},')],
  ['not JSON', () => 'include "/etc/shadow"'],
  ['nested 100,000 deep', () => '['.repeat(100_000) + ']'.repeat(100_000)],
]
/**
 * Text the schema lets through because it never reaches the kernel as text (a rule key is
 * hashed into set names; names and hrefs are not rendered): applied, and inert.
 */
const INERT: readonly (readonly [string, (version: number) => string])[] = [
  [
    'rule key: quote, newline and include',
    (v) =>
      edited((p) => {
        p.version = v
        rule0(p).key = 'k" }\ninclude "/etc/shadow"\n#'
      }),
  ],
  [
    'rule href: newline and a table',
    (v) =>
      edited((p) => {
        p.version = v
        rule0(p).ruleHref = 'r\n}\ntable inet injected { }'
      }),
  ],
  [
    'workload name: newline and include',
    (v) =>
      edited((p) => {
        p.version = v
        p.workload = { href: '/x"\ninclude "/etc/shadow"', name: 'w\ninclude "/etc/shadow"' }
      }),
  ],
]

/** Streamed, never built whole: ten million peers, far past the reply bound. */
const TEN_MILLION = 'peers: ten million (streamed)'

/** Ten million peers, written as the agent reads them, until it hangs up. */
function tenMillionPeers(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/json' })
  const head = edited((p) => void (rule0(p).peers = { v4: ['__PEERS__'], v6: [] }))
  const [before, after] = head.split('"__PEERS__"') as [string, string]
  res.write(`{"hash":"c0","policy":${before}`)
  const chunk = Array.from({ length: 10_000 }, () => '"198.18.100.100/32"').join(',')
  let sent = 0
  let closed = false
  res.on('close', () => (closed = true))
  const more = () => {
    while (!closed && sent < 1000) {
      sent++
      if (!res.write(sent === 1 ? chunk : `,${chunk}`)) return void res.once('drain', more)
    }
    if (!closed) res.end(`${after}}`)
  }
  more()
}

const refusedEvents = (fake: FakePolicyServer) =>
  fake.events.filter(
    (e) => e.event_type === 'agent.health' && e.details.policy_refused === 'offered',
  )

/** What the namespace's kernel holds, all tables, with counters left out. */
const rulesetOf = async (h: LabHost) =>
  (await h.run('nft', ['list', 'ruleset'])).stdout.replace(
    /counter packets \d+ bytes \d+/g,
    'counter',
  )

describe('agent against a hostile policy server (real kernel)', () => {
  let lab: Lab
  let fake: FakePolicyServer
  let socket: string
  let srvPeer: LabPeer
  let h1Peer: LabPeer
  let agent: LabAgent | undefined

  beforeAll(async () => {
    await writeFile(canaryFile, `${CANARY}\n`)
    lab = await Lab.create(['srv', 'h1'])
    fake = new FakePolicyServer(AGENT)
    socket = join(tmpdir(), `palisade-hostile-${process.pid}.sock`)
    await rm(socket, { force: true })
    await fake.listen(socket)
    srvPeer = LabPeer.start(lab.host('srv').ns)
    await srvPeer.expose(lab.host('srv').ip4, PORT, socket)
    h1Peer = LabPeer.start(lab.host('h1').ns)
    await h1Peer.listen([8080, 9090, 31337], [])
  })
  afterAll(async () => {
    await agent?.cleanup()
    await srvPeer?.stop()
    await h1Peer?.stop()
    await fake?.close()
    await rm(socket, { force: true })
    await rm(canaryFile, { force: true })
    await lab?.destroy()
  })

  it(`refuses each of ${CORPUS.length + 1} injections (old ruleset kept, nothing foreign, nothing leaked, unhealthy once each, still running) and keeps ${INERT.length} more inert`, async () => {
    const h1 = lab.host('h1')
    const srv = lab.host('srv')
    agent = await LabAgent.attach(
      h1.ns,
      'nftables',
      { url: `http://${srv.ip4}:${PORT}`, agentId: AGENT, token: 'token' },
      { heartbeatMs: 2000 },
    )
    fake.policy('a0', JSON.stringify(GOOD))
    await agent.waitApplied(1, 20_000)
    const probe = () =>
      srvPeer.probe(
        [8080, 9090, 31337].map((port) => ({ proto: 'tcp' as const, host: h1.ip4, port })),
      )
    expect(await probe()).toEqual(['open', 'timeout', 'timeout'])
    const baseline = await rulesetOf(h1)
    expect(baseline).toContain('table inet palisade')

    const shadowFirst = (await readFile('/etc/shadow', 'utf8')).split('\n')[0] ?? ''
    const all = [
      ...CORPUS.map(([name, text]) => [name, text] as const),
      [TEN_MILLION, undefined] as const,
    ]
    for (const [i, [name, text]] of all.entries()) {
      const servedBefore = fake.served
      const eventsBefore = refusedEvents(fake).length
      // The first injection is sent three times in a row: still one event.
      const times = i === 0 ? 3 : 1
      for (let k = 0; k < times; k++)
        if (text) fake.policy(`b${i.toString(16).padStart(4, '0')}`, text())
        else fake.answer(tenMillionPeers)
      const refused = await waitFor(
        `the agent to report ${name} refused`,
        () =>
          Promise.resolve(
            fake.served >= servedBefore + times
              ? fake.reportAfter(servedBefore + times, (r) => r.health?.health === 'unhealthy')
              : undefined,
          ),
        60_000,
      )
      expect(refused.health?.reason, name).toBeTruthy()
      await waitFor(`the event for ${name}`, () =>
        Promise.resolve(refusedEvents(fake).length > eventsBefore ? true : undefined),
      )
      expect(agent.running, `${name}: the agent keeps running`).toBe(true)
      expect(
        await rulesetOf(h1),
        `${name}: the kernel holds the previous ruleset, nothing else`,
      ).toBe(baseline)
      // The server is back to the policy the agent has: healthy again.
      const servedBad = fake.served
      fake.unchanged()
      await waitFor(`the agent to be healthy after ${name}`, () =>
        Promise.resolve(fake.reportAfter(servedBad + 1, (r) => r.health?.health === 'healthy')),
      )
      expect(refusedEvents(fake).length, `${name}: exactly one event`).toBe(eventsBefore + 1)
    }

    expect(refusedEvents(fake)).toHaveLength(all.length)
    expect(await probe()).toEqual(['open', 'timeout', 'timeout'])

    for (const [i, [name, text]] of INERT.entries()) {
      const version = 10 + i
      fake.policy(`d${i}`, text(version))
      await waitFor(
        `the agent to apply ${name}`,
        async () => {
          const s = await agent?.status()
          return s?.enforcement.health === 'healthy' && s.enforcement.applied?.version === version
            ? true
            : undefined
        },
        30_000,
      )
      const rules = await rulesetOf(h1)
      expect(rules, name).not.toMatch(/shadow|include|injected/)
      expect(await probe(), name).toEqual(['open', 'timeout', 'timeout'])
    }
    expect(refusedEvents(fake)).toHaveLength(all.length)
    const tables = JSON.parse((await h1.run('nft', ['-j', 'list', 'tables'])).stdout) as {
      nftables: { table?: { family: string; name: string } }[]
    }
    expect(
      tables.nftables.flatMap((o) => (o.table ? [`${o.table.family} ${o.table.name}`] : [])),
    ).toEqual(['inet palisade'])
    const sent = fake.bodies.join('\n')
    expect(sent).not.toContain(CANARY)
    if (shadowFirst) expect(sent).not.toContain(shadowFirst)
    // Memory: the ten million peers were cut off by the reply bound, not held.
    const status = await readFile(`/proc/${agent.pid}/status`, 'utf8').catch(() => '')
    const hwmKb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN)
    console.log(
      `hostile server: ${all.length} injections refused, ${INERT.length} applied inert; agent peak RSS ${(hwmKb / 1024).toFixed(0)} MiB`,
    )
    expect(hwmKb).toBeLessThan(1024 * 1024)
  }, 600_000)
})
