import { hostPolicyFromLocalFile } from '@palisade/model'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { Runner } from '../exec.js'
import { Outbox } from '../outbox.js'
import { DEFAULT_FLOW_CONFIG, FlowCollector } from './collector.js'
import { countingState } from './counting.fixture.js'

const summary = hostPolicyFromLocalFile({
  version: 1,
  enforcement_mode: 'full',
  visibility_level: 'flow_summary',
  rules: [],
})
/** A state whose rules count, as the enforcer verified it (nftables: its sets are read). */
const counting = countingState('nftables')

/** Runs `test` on a collector with its outbox in a fresh directory; stops it and cleans up. */
async function withCollector(
  run: Runner | undefined,
  test: (c: FlowCollector) => Promise<void>,
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'palisade-collector-'))
  const c = new FlowCollector({
    // no read on the interval: only the reads a test asks for
    config: { ...DEFAULT_FLOW_CONFIG, intervalMs: 3_600_000 },
    outbox: new Outbox(join(dir, 'flows'), join(dir, 'flows.offset')),
    log: () => undefined,
    onFlushed: () => undefined,
    ...(run && { run }),
  })
  try {
    await test(c)
  } finally {
    await c.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

/** `nft` on a host where generation a is live and every count set empty; `listing` sees each listing. */
function emptyCounts(listing: (set: string) => Promise<void> | void): Runner {
  return async (_cmd, args) => {
    const name = args.at(-1) ?? ''
    if (args.includes('list')) await listing(name)
    const elem = name === 'flow_gen_a' ? ', "elem": ["ipv4", "ipv6"]' : ''
    const stdout = args.includes('list')
      ? `{"nftables": [{"set": {"family": "inet", "name": "${name}", "table": "palisade", "size": 262144${elem}}}]}`
      : ''
    return { code: 0, stdout, stderr: '' }
  }
}

describe('FlowCollector', () => {
  it('starts nothing once stopped, whatever policy arrives late (its readers would outlive the agent)', () =>
    withCollector(undefined, async (c) => {
      await c.stop()
      c.configure(summary, true, true)
      expect(c.status).toMatchObject({
        level: 'flow_off',
        readers: { log: 'stopped', confirmations: 'stopped' },
      })
    }))

  it('reads once more after a read under way: what the kernel counted since its flip is not left behind', async () => {
    let reads = 0
    let release = () => undefined as void
    const held = new Promise<void>((r) => (release = r))
    // the first read is held at its first listing
    const run = emptyCounts((set) => (set === 'flow_gen_a' && ++reads === 1 ? held : undefined))
    await withCollector(run, async (c) => {
      c.configure(summary, true, false, true)
      c.countersApplied(counting)
      const asked = [c.readCounts(), c.readCounts(), c.readCounts()]
      release()
      await Promise.all(asked)
      expect(reads).toBe(2)
    })
  })

  it('reads no counts until the rules that count are verified in the kernel (before, the sets are missing)', async () => {
    const listed: string[] = []
    const run = emptyCounts((set) => void listed.push(set))
    await withCollector(run, async (c) => {
      c.configure(summary, true, false, true)
      await c.readCounts()
      expect(listed).toEqual([])
      expect(c.status.readers.counting).toBe('waiting for the rules that count to be applied')
      c.countersApplied(counting)
      expect(c.status.readers.counting).toBe('running')
      await c.readCounts()
      expect(listed).toEqual(['flow_gen_a', 'flows4_a', 'flows6_a'])
      // a state without counting verified since: its sets are gone, nothing to read
      c.countersApplied(undefined)
      await c.readCounts()
      expect(listed).toHaveLength(3)
    })
  })

  it('reads what iptables rules counted before they change (their keys name no rule), not before a repair', async () => {
    const calls: string[] = []
    const run: Runner = (cmd, args) => {
      calls.push([cmd, ...args].join(' '))
      return Promise.resolve({ code: 0, stdout: '', stderr: '' })
    }
    const [v1, v2] = [countingState('iptables-nft', 1), countingState('iptables-nft', 2)]
    await withCollector(run, async (c) => {
      c.configure(summary, true, false, true)
      c.countersApplied(v1)
      await c.beforeChange(v1)
      expect(calls).toEqual([])
      await c.beforeChange(v2)
      expect(calls.filter((x) => x.startsWith('sh -c') && x.includes('ipset swap'))).toHaveLength(1)
      // nftables keys carry the rule's tag: nothing to read first
      calls.length = 0
      c.countersApplied(counting)
      await c.beforeChange(v2)
      expect(calls).toEqual([])
    })
  })
})
