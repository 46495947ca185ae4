/**
 * Flow counting in the kernel through a real agent, on every backend: at `flow_summary` the agent
 * counts allowed connections in the kernel (nftables dynamic sets, ipsets with counters on
 * iptables) and reads them once per interval. Every connection made must be counted exactly
 * once, in summaries with the allowed decision and the rule, across a policy change that
 * replaces our objects (nftables' counts are read first); and the reader's work on the counting
 * sets must never look like tampering. Flows turned on count every connection from the moment
 * the policy applies: its rules count at once, so the reader must already be set up then.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Runner } from '@palisade/agent'
import { readOwn, runChecked } from '@palisade/agent'
import type { Backend } from '@palisade/firewall'
import {
  BACKENDS,
  FLOW_COUNTERS,
  findTable,
  NFT_TABLE,
  parseNftFlowCounts,
} from '@palisade/firewall'
import type { LabHost } from '@palisade/lab'
import { Lab, LabAgent, LabPeer, resetFirewall, waitFor } from '@palisade/lab'
import type { FlowSummaryUpload } from '@palisade/model'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const PORT = 8080
/** Connections are made for this long, several at a time: hundreds to thousands of them. */
const SECONDS = 1
const AT_LEAST = 200

const policy = (
  version: number,
  peers: readonly string[],
  extra = false,
  visibility = 'flow_summary',
) => ({
  version,
  enforcement_mode: 'full',
  visibility_level: visibility,
  rules: [
    {
      action: 'allow',
      direction: 'inbound',
      peers,
      services: [{ proto: 6, port: PORT }],
    },
    // a new rule with its own peer set: the next apply replaces our table whole
    ...(extra
      ? [
          {
            action: 'allow',
            direction: 'inbound',
            peers: ['198.19.7.0/24'],
            services: [{ proto: 17, port: 53 }],
          },
        ]
      : []),
  ],
})

async function summaries(agent: LabAgent): Promise<FlowSummaryUpload[]> {
  const text = await readFile(join(agent.stateDir, 'flows.jsonl'), 'utf8').catch(() => '')
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as FlowSummaryUpload)
}

const total = (s: readonly FlowSummaryUpload[]) => s.reduce((n, x) => n + x.num_connections, 0)

/** Waits until no connection to PORT is open or closing: the last ACKs have arrived. */
async function closed(run: Runner): Promise<void> {
  await waitFor(
    'the connections to close',
    async () =>
      (await runChecked(run, 'ss', ['-Htan', 'state', 'connected', `sport = :${PORT}`])).trim() ===
      ''
        ? true
        : undefined,
    10_000,
    50,
  )
}

describe('flow counting in the kernel through a real agent', () => {
  let lab: Lab
  let server: LabHost
  let client: LabHost
  let listener: LabPeer
  let peer: LabPeer

  beforeAll(async () => {
    lab = await Lab.create(['srv', 'cli'])
    server = lab.host('srv')
    client = lab.host('cli')
    listener = LabPeer.start(server.ns)
    await listener.listen([PORT], [])
    peer = LabPeer.start(client.ns)
  }, 60_000)

  afterAll(async () => {
    await peer?.stop()
    await listener?.stop()
    await lab?.destroy()
  })

  /** Makes connections for SECONDS and waits for the last ones to close; returns how many. */
  const connect = async (to = server.ip4) => {
    const r = await peer.connectionRate(to, PORT, SECONDS, 4)
    await closed(server.run)
    expect(r.failures).toBe(0)
    return r.connections
  }

  const expectSummaries = (counted: readonly FlowSummaryUpload[]) => {
    for (const s of counted)
      expect(s).toMatchObject({
        direction: 'inbound',
        ...(s.src_ip.includes(':')
          ? { src_ip: client.ip6, dst_ip: server.ip6 }
          : { src_ip: client.ip4, dst_ip: server.ip4 }),
        port: PORT,
        proto: 6,
        policy_decision: 'allowed',
        rule_href: 'local/rules/0',
        dropped_downstream: false,
      })
  }

  /** An agent over policy 1 that reads the kernel's counts every `intervalMs`. */
  const startAgent = (intervalMs: number, backend: Backend = 'nftables') =>
    LabAgent.start(
      server.ns,
      backend,
      policy(1, [client.ip4, client.ip6]),
      {},
      { flows: { intervalMs } },
    )

  /**
   * Waits until the agent counts in the kernel: on iptables, from the first survey that shows
   * our hooks where the mode puts them (until then nothing after ours is ruled out, and it logs).
   */
  const countingOn = (agent: LabAgent) =>
    waitFor(
      'counting in the kernel',
      async () =>
        (await agent.status())?.flows?.readers.counting === 'running' ? true : undefined,
      10_000,
      50,
    )

  /**
   * Runs `test` on an agent of `backend` that counts in the kernel and reads every
   * `intervalMs`; cleans up after it, whatever happens.
   */
  const withCountingAgent = async (
    backend: Backend,
    intervalMs: number,
    test: (agent: LabAgent) => Promise<void>,
  ) => {
    await resetFirewall(server.run)
    const agent = await startAgent(intervalMs, backend)
    try {
      await countingOn(agent)
      await test(agent)
    } finally {
      await agent.cleanup()
      await resetFirewall(server.run)
    }
  }

  /** Our iptables rules as the backend's save tool prints them. */
  const saved = (backend: Backend) =>
    runChecked(
      server.run,
      backend === 'iptables-legacy' ? 'iptables-legacy-save' : 'iptables-nft-save',
      [],
    )

  /** The counting sets our objects hold, by name, as read back. */
  const countingSets = async (backend: Backend) => {
    const own = await readOwn(server.run, backend)
    return backend === 'nftables'
      ? (findTable(own, 'nft', 'inet', NFT_TABLE)?.counters ?? [])
      : own.ipsets.filter((s) => s.counts).map((s) => s.name)
  }

  const expectNoTampering = async (agent: LabAgent) => {
    const status = await agent.status()
    expect(status?.enforcement.tampering.repairs).toBe(0)
    expect(status?.flows?.readers.counting).toBe('running')
    expect((await agent.events()).filter((e) => e.event_type === 'agent.tampering')).toEqual([])
  }

  it.each(BACKENDS as readonly Backend[])(
    '%s: read once per interval, every connection counted once, and no tampering',
    async (backend) => {
      await withCountingAgent(backend, 1000, async (agent) => {
        expect([...(await countingSets(backend))].sort()).toEqual(
          backend === 'nftables'
            ? [...FLOW_COUNTERS].sort()
            : [4, 6]
                .flatMap((f) =>
                  ['in', 'out'].flatMap((d) => [
                    `palisade-flows${f}-${d}`,
                    `palisade-flows${f}-${d}-read`,
                  ]),
                )
                .sort(),
        )
        let made = 0
        // several intervals' reads, each flipping the generation and flushing the other (or
        // swapping each set with its spare); the last round over IPv6
        for (let round = 0; round < 3; round++) made += await connect()
        const made6 = await connect(server.ip6)
        made += made6
        expect(made).toBeGreaterThanOrEqual(AT_LEAST)
        const counted = await waitFor(
          `${made} connections in the flow summaries`,
          async () => {
            const s = await summaries(agent)
            return total(s) >= made ? s : undefined
          },
          10_000,
          100,
        ).catch(async (e: Error) => {
          throw new Error(`${e.message}: ${total(await summaries(agent))} counted`)
        })
        expect(total(counted)).toBe(made)
        expect(total(counted.filter((x) => x.src_ip === client.ip6))).toBe(made6)
        // one summary per interval at most: counts were read while the agent ran
        expect(counted.length).toBeGreaterThan(1)
        expectSummaries(counted)
        await expectNoTampering(agent)
        // the last read, as the agent stops, finds nothing more: nothing was counted twice
        await agent.stop()
        expect(total(await summaries(agent))).toBe(made)
      })
    },
    120_000,
  )

  it('nftables: a connection counts once while both generations are live, as between the two steps of a flip', async () => {
    await resetFirewall(server.run)
    const agent = await startAgent(600_000)
    try {
      // the flip's first step: the other generation live too (the reader's own kind of change)
      await runChecked(server.run, 'nft', ['add element inet palisade flow_gen_b { ipv4, ipv6 }'])
      const made = (await connect()) + (await connect())
      expect(made).toBeGreaterThanOrEqual(AT_LEAST)
      const counts = await Promise.all(
        ['flows4_a', 'flows4_b'].map(async (set) =>
          parseNftFlowCounts(
            await runChecked(server.run, 'nft', [
              '-j',
              '-p',
              'list',
              'set',
              'inet',
              NFT_TABLE,
              set,
            ]),
          ).entries.reduce((n, e) => n + e.connections, 0),
        ),
      )
      // each connection met the copy of its rule for generation a first
      expect(counts).toEqual([made, 0])
      expect((await agent.status())?.enforcement.tampering.repairs).toBe(0)
      expect((await agent.events()).filter((e) => e.event_type === 'agent.tampering')).toEqual([])
    } finally {
      await agent.cleanup()
      await resetFirewall(server.run)
    }
  }, 120_000)

  it.each(BACKENDS as readonly Backend[])(
    '%s: counts survive a policy change that replaces our objects, and are read as the agent stops',
    async (backend) => {
      // no read on the interval while the test runs: only the reads it is about
      await withCountingAgent(backend, 600_000, async (agent) => {
        const before = await connect()
        await agent.writePolicy(policy(2, [client.ip4, client.ip6], true))
        await agent.waitApplied(2)
        await countingOn(agent)
        // the change replaced our objects whole: nftables' sets are emptied (the read before it
        // matters); the counting ipsets are kept as they are
        expect((await agent.status())?.enforcement.applied?.plan).toBe('full')
        const after = await connect()
        expect(before + after).toBeGreaterThanOrEqual(AT_LEAST)
        await expectNoTampering(agent)
        expect(await summaries(agent)).toEqual([])
        await agent.stop()
        const counted = await summaries(agent)
        expect(total(counted)).toBe(before + after)
        expectSummaries(counted)
      })
    },
    120_000,
  )

  it.each(BACKENDS as readonly Backend[])(
    '%s: flows turned on count every connection made once the policy applies',
    async (backend) => {
      await resetFirewall(server.run)
      const agent = await LabAgent.start(
        server.ns,
        backend,
        policy(1, [client.ip4, client.ip6], false, 'flow_off'),
        {},
        { flows: { intervalMs: 500 } },
      )
      try {
        await agent.writePolicy(policy(2, [client.ip4, client.ip6]))
        await agent.waitApplied(2)
        const made = await connect()
        await agent.stop()
        expect(total(await summaries(agent))).toBe(made)
      } finally {
        await agent.cleanup()
        await resetFirewall(server.run)
      }
    },
    60_000,
  )

  it.each(BACKENDS as readonly Backend[])(
    '%s: flows turned off read the last counts and remove what counted',
    async (backend) => {
      // no read on the interval: only the read before the counting objects go
      await withCountingAgent(backend, 600_000, async (agent) => {
        const made = await connect()
        await agent.writePolicy(policy(2, [client.ip4, client.ip6], false, 'flow_off'))
        await agent.waitApplied(2)
        expect((await agent.status())?.enforcement.health).toBe('healthy')
        expect(await countingSets(backend)).toEqual([])
        if (backend !== 'nftables') {
          expect(await saved(backend)).not.toContain('PALISADE-COUNT')
        }
        await agent.stop()
        expect(total(await summaries(agent))).toBe(made)
      })
    },
    60_000,
  )

  it.each(['iptables-nft', 'iptables-legacy'] as const)(
    '%s: going idle removes our chains, counting chains first emptied, and every set',
    async (backend) => {
      await withCountingAgent(backend, 600_000, async (agent) => {
        await agent.writePolicy({
          ...policy(2, [client.ip4, client.ip6]),
          enforcement_mode: 'idle',
        })
        await agent.waitApplied(2)
        expect((await agent.status())?.enforcement.health).toBe('healthy')
        expect(await saved(backend)).not.toContain('PALISADE-')
        expect((await runChecked(server.run, 'ipset', ['list', '-n'])).trim()).toBe('')
      })
    },
    60_000,
  )

  it.each(BACKENDS as readonly Backend[])(
    '%s: connections counted before a policy change are reported under the rule that allowed them then',
    async (backend) => {
      await withCountingAgent(backend, 600_000, async (agent) => {
        const before = await connect()
        // the same traffic, now allowed by another rule (local/rules/1): same keys, other tag
        const p1 = policy(2, [client.ip4, client.ip6])
        const moved = { ...p1, rules: [{ ...p1.rules[0], peers: ['198.19.7.1'] }, p1.rules[0]] }
        await agent.writePolicy(moved)
        await agent.waitApplied(2)
        await countingOn(agent)
        const after = await connect()
        await agent.stop()
        const counted = await summaries(agent)
        const under = (href: string) => total(counted.filter((x) => x.rule_href === href))
        expect([under('local/rules/0'), under('local/rules/1')]).toEqual([before, after])
      })
    },
    60_000,
  )
})
