/**
 * Traffic visibility on the real kernel: real connections between namespaces, three database
 * hosts (one per backend) with a foreign drop before our chains and one after, in every mode
 * and enforcement state. The flows the server returns must match, decision by decision, the
 * connections made; traffic a foreign rule decided first must not be reported at all.
 */
import { runChecked } from '@palisade/agent'
import type { Backend } from '@palisade/firewall'
import type { LabAgent } from '@palisade/lab'
import { Lab, LabAgent as Agent, LabPeer, LabServer, runPalisade, waitFor } from '@palisade/lab'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

type Json = Record<string, unknown>
interface Flow {
  src: { ip: string }
  dst: { ip: string }
  service: { port?: number }
  num_connections: number
  policy_decision: string
  flow_direction: string
  dropped_downstream: boolean
  rule_href: string | null
}

const DB_HOSTS: Record<string, Backend> = {
  dbn: 'nftables',
  dbi: 'iptables-nft',
  dbl: 'iptables-legacy',
}
const ALLOWED = 5432
/** A foreign drop before our chains: we never see this traffic. */
const PRE_EMPTED = 6100
/** A foreign drop after our chains: we allow it, and the kernel never confirms it. */
const OVERRIDDEN = 7000
/** Connections made to each target in each case. */
const TRIES = 2

/** A firewalld-like foreign table: one chain before ours, one after (both nftables). */
const foreignTables = `table inet foreign {
  chain early { type filter hook input priority -170; policy accept; tcp dport ${PRE_EMPTED} drop; }
  chain late { type filter hook input priority 10; policy accept; tcp dport ${OVERRIDDEN} drop; }
}
`

describe('traffic flows from the kernel, in every mode, enforcement state and backend', () => {
  let lab: Lab
  let server: LabServer
  const agents: LabAgent[] = []
  const peers: Record<string, LabPeer> = {}
  const href: Record<string, string> = {}

  const api = async (method: string, path: string, body?: unknown, want?: number) => {
    const r = await server.api(method, path, body)
    if (want !== undefined)
      expect(r.status, `${method} ${path}: ${JSON.stringify(r.body)}`).toBe(want)
    return r.body as Json
  }
  const workloads = async () =>
    (await api('GET', '/api/v2/orgs/1/workloads?managed=true')) as unknown as (Json & {
      href: string
      hostname: string
      agent: { status: { security_policy_sync_state: string } }
    })[]
  const provision = async () => {
    const r = await server.api('POST', '/api/v2/orgs/1/sec_policy', {
      update_description: 'traffic test',
    })
    // nothing pending is fine: the state asked for is already active
    expect([201, 406], JSON.stringify(r.body)).toContain(r.status)
    await waitFor(
      'every agent to be synced',
      async () => {
        const list = await workloads()
        return list.length === 4 &&
          list.every((w) => w.agent.status.security_policy_sync_state === 'synced')
          ? true
          : undefined
      },
      30_000,
      300,
    )
  }

  const query = async (body: Json): Promise<Flow[]> => {
    const q = await api('POST', '/api/v2/orgs/1/traffic_flows/async_queries', body, 201)
    const done = await waitFor(
      'the traffic query to complete',
      async () => {
        const s = await api('GET', `/api/v2${String(q.href)}`)
        return s.status === 'completed' ? s : undefined
      },
      10_000,
      100,
    )
    return (await api('GET', `/api/v2${String(done.result)}`, undefined, 200)) as unknown as Flow[]
  }

  beforeAll(async () => {
    lab = await Lab.create(['srv', 'web', 'ext', ...Object.keys(DB_HOSTS)])
    server = await LabServer.start(lab.host('srv').ns, lab.host('srv').ip4)
    for (const v of ['web', 'db'])
      href[v] = String(
        (await api('POST', '/api/v2/orgs/1/labels', { key: 'role', value: v }, 201)).href,
      )
    const cfg = { heartbeatMs: 1000, confirmMs: 15_000, flows: { intervalMs: 1000 } }
    // the client only watches: its own outbound policy must not stop what the test sends
    agents.push(
      await Agent.pair(
        lab.host('web').ns,
        'nftables',
        server,
        await server.activationCode('web', [href.web ?? ''], 'visibility_only'),
        cfg,
      ),
    )
    for (const [h, backend] of Object.entries(DB_HOSTS)) {
      const host = lab.host(h)
      await runChecked(host.run, 'nft', ['-f', '-'], { stdin: foreignTables })
      agents.push(
        await Agent.pair(
          host.ns,
          backend,
          server,
          await server.activationCode(`db-${h}`, [href.db ?? '']),
          cfg,
        ),
      )
      peers[h] = LabPeer.start(host.ns)
      await peers[h].listen([ALLOWED, PRE_EMPTED, OVERRIDDEN], [])
    }
    peers.web = LabPeer.start(lab.host('web').ns)
    peers.ext = LabPeer.start(lab.host('ext').ns)
    // web may reach the databases on the allowed and the overridden port
    await server.allowRule('web to db', [], {
      providers: href.db ?? '',
      consumers: href.web ?? '',
      tcpPorts: [ALLOWED, OVERRIDDEN],
    })
    await provision()
  }, 180_000)

  afterAll(async () => {
    for (const a of agents) await a.cleanup()
    for (const p of Object.values(peers)) await p.stop()
    await server?.cleanup()
    await lab?.destroy()
  })

  const MODES = [
    ['exclusive', null],
    ['coexistence_primary', true],
    ['coexistence_non_primary', false],
  ] as const
  const STATES = ['full', 'selective', 'visibility_only', 'idle'] as const

  /** Puts every database host in this mode and state, and waits until each agent enforces it. */
  const enforce = async (mode: string, primary: boolean | null, state: string) => {
    await api(
      'PUT',
      '/api/v2/orgs/1/sec_policy/draft/firewall_settings',
      {
        firewall_coexistence:
          primary === null ? [] : [{ scope: [{ href: href.db }], illumio_primary: primary }],
      },
      204,
    )
    for (const w of await workloads())
      if (w.hostname !== 'web')
        await api('PUT', `/api/v2${w.href}`, { enforcement_mode: state }, 204)
    await provision()
    await waitFor(
      `every database agent to enforce ${mode} ${state}`,
      async () => {
        const st = await Promise.all(agents.slice(1).map((a) => a.status()))
        return st.every(
          (x) =>
            x?.policy?.enforcementMode === state &&
            x.policy.mode === mode &&
            x.enforcement.health === 'healthy',
        )
          ? true
          : undefined
      },
      30_000,
      200,
    )
  }

  /**
   * What the spec says a database host reports for each connection, by source and port. Our
   * nftables chain sits at +20 in non-primary mode: the foreign drop at +10 then stands before
   * us, and that traffic is never seen.
   */
  const expected = (state: (typeof STATES)[number], mode: string, backend: Backend) => {
    if (state === 'idle') return {}
    const unallowed = state === 'full' ? 'blocked' : 'potentially_blocked'
    const want: Record<string, { decision: string; dropped: boolean }> = {
      [`web ${ALLOWED}`]: { decision: 'allowed', dropped: false },
      [`ext ${ALLOWED}`]: { decision: unallowed, dropped: false },
    }
    if (!(mode === 'coexistence_non_primary' && backend === 'nftables')) {
      // we pass it on, and the foreign drop after us shows as a connection never confirmed
      want[`web ${OVERRIDDEN}`] = { decision: 'allowed', dropped: true }
      want[`ext ${OVERRIDDEN}`] = { decision: unallowed, dropped: state !== 'full' }
    }
    // PRE_EMPTED: a foreign rule decided before us: nothing is reported
    return want
  }

  const matrix: string[] = []
  it.each(MODES.flatMap(([mode, primary]) => STATES.map((s) => [mode, primary, s] as const)))(
    '%s (primary: %s), %s: flows match the connections made',
    async (mode, primary, state) => {
      await enforce(mode, primary, state)
      const start = new Date().toISOString()
      const from = { web: lab.host('web').ip4, ext: lab.host('ext').ip4 }
      // Each try probes every host and port from both clients at once: the closed ones wait out
      // their timeout together, not one after another.
      const targets = Object.keys(DB_HOSTS).flatMap((h) =>
        [ALLOWED, PRE_EMPTED, OVERRIDDEN].map((port) => ({ h, port })),
      )
      const outcomes: Record<string, string[]> = {}
      for (let i = 0; i < TRIES; i++)
        await Promise.all(
          (['web', 'ext'] as const).map(async (who) => {
            const results =
              (await peers[who]?.probe(
                targets.map(({ h, port }) => ({ proto: 'tcp', host: lab.host(h).ip4, port })),
              )) ?? []
            targets.forEach(({ h, port }, j) =>
              (outcomes[`${h} ${who} ${port}`] ??= []).push(results[j] ?? 'no answer'),
            )
          }),
        )
      // the kernel did what the policy and the foreign rules say
      const open = ['open', 'open']
      const closed = ['timeout', 'timeout']
      for (const h of Object.keys(DB_HOSTS)) {
        expect(outcomes[`${h} web ${ALLOWED}`], h).toEqual(open)
        expect(outcomes[`${h} ext ${ALLOWED}`], h).toEqual(state === 'full' ? closed : open)
        for (const who of ['web', 'ext']) {
          expect(outcomes[`${h} ${who} ${PRE_EMPTED}`], h).toEqual(closed)
          expect(outcomes[`${h} ${who} ${OVERRIDDEN}`], h).toEqual(closed)
        }
      }
      const want: Record<string, { decision: string; dropped: boolean; n: number }> = {}
      for (const [h, backend] of Object.entries(DB_HOSTS))
        for (const [k, v] of Object.entries(expected(state, mode, backend)))
          want[`${h} ${k}`] = { ...v, n: TRIES }
      const inbound = async () =>
        (
          await query({
            start_date: start,
            end_date: new Date(Date.now() + 60_000).toISOString(),
            destinations: { include: [[{ label: { href: href.db } }]], exclude: [] },
            max_results: 1000,
          })
        ).filter((f) => f.flow_direction === 'inbound')
      const expectedTotal = Object.keys(want).length * TRIES
      let flows: Flow[]
      if (state === 'idle') {
        // an idle host has no rules and reports nothing: give it two intervals to prove it
        await new Promise((r) => setTimeout(r, 3000))
        flows = await inbound()
      } else
        flows = await waitFor(
          `${expectedTotal} connections in the database hosts' inbound flows`,
          async () => {
            const f = await inbound()
            return f.reduce((n, x) => n + x.num_connections, 0) >= expectedTotal ? f : undefined
          },
          20_000,
          500,
        )
      const byHost = (ip: string) => Object.keys(DB_HOSTS).find((h) => lab.host(h).ip4 === ip)
      const got: typeof want = {}
      for (const f of flows) {
        const who = f.src.ip === from.web ? 'web' : f.src.ip === from.ext ? 'ext' : f.src.ip
        const k = `${byHost(f.dst.ip)} ${who} ${f.service.port}`
        expect(got[k], `one summary for ${k}`).toBeUndefined()
        got[k] = {
          decision: f.policy_decision,
          dropped: f.dropped_downstream,
          n: f.num_connections,
        }
      }
      expect(got).toEqual(want)
      matrix.push(
        `${mode.padEnd(24)} ${state.padEnd(16)} ${Object.keys(got).length} summaries as expected`,
      )
    },
    120_000,
  )

  it('shows the foreign rules that pre-empt and override our policy, and explains a packet', async () => {
    await enforce('coexistence_primary', true, 'full')
    const db = (await workloads()).find((w) => w.hostname === 'dbn')
    // the agent reads the host again after it applied, and reports the ruleset with its status
    let last: unknown
    const kinds = await waitFor(
      'the impact of the foreign rules on the database host',
      async () => {
        const impact = await api(
          'GET',
          `/api/v2${String(db?.href)}/coexistence_impact`,
          undefined,
          200,
        )
        last = impact
        const k = (
          impact.impacts as { kind: string; traffic: string; rule: { table: string } }[]
        ).map((i) => `${i.kind} ${i.traffic} ${i.rule.table}`)
        return k.includes(`pre-empt tcp dport ${PRE_EMPTED} nft:inet:foreign`) &&
          k.includes(`override tcp dport ${OVERRIDDEN} nft:inet:foreign`)
          ? k
          : undefined
      },
      30_000,
      500,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; the server last said ${JSON.stringify(last).slice(0, 3000)}`)
    })
    expect(kinds.length).toBeGreaterThanOrEqual(2)
    const explain = (port: number) =>
      runPalisade(lab.host('srv').ns, [
        'explain',
        '--workload',
        'dbn',
        '--src',
        lab.host('web').ip4,
        '--dst',
        lab.host('dbn').ip4,
        '--port',
        String(port),
        '--data-dir',
        server.dataDir,
      ])
    const hidden = await explain(PRE_EMPTED)
    expect(hidden.code, hidden.out).toBe(0)
    expect(hidden.out).toContain('palisade never sees it')
    expect(hidden.out).toMatch(/verdict: drop by a foreign rule in nft:inet:foreign early/)
    const seen = await explain(OVERRIDDEN)
    expect(seen.out).toContain('policy decision: allowed')
    expect(seen.out).toMatch(/palisade sees it/)
    expect(seen.out).toMatch(/verdict: drop by a foreign rule in nft:inet:foreign late/)
    console.log(`traffic matrix (3 backends each):\n${matrix.join('\n')}`)
  })
})
