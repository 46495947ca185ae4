/**
 * What reading our rules back costs the agent's own process, at 1,000 / 10,000 / 100,000 peers:
 * parsing what the tool lists of the applied ruleset, and the diff against the desired state.
 * That time holds the agent's event loop: no change event is taken meanwhile, so it adds to a
 * repair that comes during a full read (the backstop's, every 30 s, and the survey's).
 *
 * nftables: our table as `nft -j list table` prints it, parsed by `parseNftJson`, against
 * `JSON.parse` of the same text (the floor for anything in Node that reads JSON) and against
 * the tool's own time to list it, all in the same run; and the parse the agent makes after
 * another process changed a rule (`nftJsonParser`, which keeps the sets listed before and finds
 * them listed again as they were). The iptables backends' peers live in
 * ipsets: `ipset save`, parsed by `parseIpsetSave`, against splitting the same text into lines
 * and the tool's time. Each parse is checked to equal the desired state (not timed).
 */
import type { Runner } from '@palisade/agent'
import { runChecked, runLocal } from '@palisade/agent'
import type { Desired } from '@palisade/firewall'
import {
  compile,
  diff,
  NFT_TABLE,
  nftJsonParser,
  parseIpsetSave,
  parseNftJson,
  planApply,
  renderIpsetStage,
  renderNftScript,
} from '@palisade/firewall'
import { Lab } from '@palisade/lab'
import { DEFAULT_FAILSAFE } from '@palisade/model'
import { policyWithPeers } from './peers.js'
import { median, timed } from './stats.js'

const SIZES = (process.env.PALISADE_BENCH_SIZES ?? '1000,10000,100000').split(',').map(Number)
const REPS = 9

export async function run(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {}
  const ns = await Lab.isolated()
  const run: Runner = (cmd, args, opts) =>
    runLocal('nsenter', [`--net=/run/netns/${ns.ns}`, cmd, ...args], opts)
  try {
    for (const n of SIZES) {
      out[`${n} peers`] = {
        nftables: await nftRead(run, n),
        ipset: await ipsetRead(run, n),
      }
      console.error(JSON.stringify({ peers: n, ...(out[`${n} peers`] as object) }))
    }
  } finally {
    await ns.destroy()
  }
  return out
}

async function nftRead(run: Runner, n: number) {
  const d = compile(policyWithPeers(n), { backend: 'nftables', failsafe: DEFAULT_FAILSAFE })
  await runChecked(run, 'nft', ['-f', '-'], { stdin: renderNftScript(d) })
  const list = () => runChecked(run, 'nft', ['-j', 'list', 'table', 'inet', NFT_TABLE])
  const text = await list()
  const m = { listMs: [] as number[], jsonParseMs: [] as number[], parseMs: [] as number[] }
  const diffMs: number[] = []
  for (let i = 0; i < REPS; i++) {
    m.listMs.push((await timed(list)).ms)
    m.jsonParseMs.push((await timed(() => JSON.parse(text) as unknown)).ms)
    const p = await timed(() => parseNftJson(text))
    m.parseMs.push(p.ms)
    const dr = await timed(() => diff(d, { tables: p.value, ipsets: [] }))
    diffMs.push(dr.ms)
    expectSame(d, dr.value)
  }
  // The agent's reads keep the sets listed before (nftJsonParser): after another process
  // changed a rule, the listing differs in that rule only.
  const input = ['inet', NFT_TABLE, 'input']
  await runChecked(run, 'nft', ['insert', 'rule', ...input, 'tcp', 'dport', '9', 'accept'])
  const changed = await list()
  const parse = nftJsonParser()
  const afterRuleChangeMs: number[] = []
  for (let i = 0; i <= REPS; i++) {
    const p = await timed(() => parse(i % 2 === 0 ? changed : text))
    if (i > 0) afterRuleChangeMs.push(p.ms)
    if (i % 2 === 1) expectSame(d, diff(d, { tables: p.value, ipsets: [] }))
  }
  await runChecked(run, 'nft', ['delete', 'table', 'inet', NFT_TABLE])
  const f = figures({ ...m, diffMs, afterRuleChangeMs })
  return {
    ...f,
    bytes: text.length,
    parseToJsonParseRatio: +(f.parseMs / f.jsonParseMs).toFixed(2),
    parseAndDiffToListRatio: +((f.parseMs + f.diffMs) / f.listMs).toFixed(3),
    afterRuleChangeToJsonParseRatio: +(f.afterRuleChangeMs / f.jsonParseMs).toFixed(2),
  }
}

async function ipsetRead(run: Runner, n: number) {
  const d = compile(policyWithPeers(n), { backend: 'iptables-legacy', failsafe: DEFAULT_FAILSAFE })
  await runChecked(run, 'ipset', ['restore'], { stdin: renderIpsetStage(d.ipsets, new Set()) })
  const list = () => runChecked(run, 'ipset', ['save'])
  const text = await list()
  const m = { listMs: [] as number[], splitMs: [] as number[], parseMs: [] as number[] }
  for (let i = 0; i < REPS; i++) {
    m.listMs.push((await timed(list)).ms)
    m.splitMs.push((await timed(() => text.split('\n'))).ms)
    const p = await timed(() => parseIpsetSave(text))
    m.parseMs.push(p.ms)
    const contents = (elements: readonly string[]) => [...elements].sort().join()
    const byName = new Map(p.value.map((s) => [s.name, contents(s.elements)]))
    for (const s of d.ipsets)
      if (byName.get(s.name) !== contents(s.elements))
        throw new Error(`ipset ${s.name}: the parse differs from what was applied`)
  }
  await runChecked(run, 'ipset', ['destroy'])
  const f = figures(m)
  return {
    ...f,
    bytes: text.length,
    parseToListRatio: +(f.parseMs / f.listMs).toFixed(3),
  }
}

function expectSame(d: Desired, drifts: ReturnType<typeof diff>): void {
  if (planApply(d, drifts).kind !== 'none')
    throw new Error(`the parse differs from what was applied: ${drifts[0]?.kind ?? '?'}`)
}

/** The median of each list of samples, rounded. */
function figures<K extends string>(m: Record<K, number[]>): Record<K, number> {
  const out = {} as Record<K, number>
  for (const k of Object.keys(m) as K[]) out[k] = +median(m[k]).toFixed(2)
  return out
}
