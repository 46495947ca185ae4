/**
 * Apply latency per backend for 1,000 / 10,000 / 100,000 peers, in fresh namespaces.
 * `ours` is what the agent does for a new policy: read our objects, diff, apply in one
 * transaction per table, read back what the apply changed and verify it (applyDesired with
 * verifyApplied). `raw` is the same rendered text fed straight to `nft -f` (or `ipset restore`
 * + `iptables-restore`), measured in the same run. Also the cost of a one-address change (a
 * set-element update) from the state the apply verified, and with a full read before it; each
 * change is then checked against a full read of the kernel (not timed).
 *
 * Tools run through `nsenter --net`, which only switches the network namespace, as close as a
 * test can come to the agent running them in its own: `ip netns exec` also makes a mount
 * namespace, which costs more than a small nft run and would swamp the small sizes.
 */
import type { Runner } from '@palisade/agent'
import { applyDesired, readOwn, runChecked, runLocal } from '@palisade/agent'
import type { Backend, Desired, Ruleset } from '@palisade/firewall'
import {
  BACKENDS,
  compile,
  diff,
  planApply,
  renderIpsetStage,
  renderIptablesRestore,
  renderNftScript,
} from '@palisade/firewall'
import { Lab } from '@palisade/lab'
import { DEFAULT_FAILSAFE } from '@palisade/model'
import { policyWithPeers } from './peers.js'
import { median, timed } from './stats.js'

const SIZES = (process.env.PALISADE_BENCH_SIZES ?? '1000,10000,100000').split(',').map(Number)
const NO_STATE = { hooksFound: [], modeChanged: true, foreignToDelete: [], staleChains: [] }

async function raw(run: Runner, d: Desired): Promise<void> {
  if (d.backend === 'nftables') {
    await runChecked(run, 'nft', ['-f', '-'], { stdin: renderNftScript(d) })
    return
  }
  const variant = d.backend === 'iptables-legacy' ? 'legacy' : 'nft'
  await runChecked(run, 'ipset', ['restore'], { stdin: renderIpsetStage(d.ipsets, new Set()) })
  await runChecked(run, `iptables-${variant}-restore`, ['--noflush'], {
    stdin: renderIptablesRestore(d, 'ip', NO_STATE),
  })
  await runChecked(run, `ip6tables-${variant}-restore`, ['--noflush'], {
    stdin: renderIptablesRestore(d, 'ip6', NO_STATE),
  })
}

async function ours(
  run: Runner,
  d: Desired,
): Promise<{ totalMs: number; applyMs: number; after: Ruleset }> {
  const t0 = performance.now()
  const actual = await readOwn(run, d.backend)
  const t1 = performance.now()
  const { after } = await applyDesired(run, d, actual, { modeChanged: false })
  const t2 = performance.now()
  expectApplied(d, after, 'after apply, as verified')
  return { totalMs: t2 - t0, applyMs: t2 - t1, after }
}

function expectApplied(d: Desired, rs: Ruleset, when: string): void {
  const drifts = diff(d, rs)
  if (planApply(d, drifts).kind !== 'none')
    throw new Error(`${d.backend} ${when}: the kernel differs: ${drifts[0]?.kind ?? '?'}`)
}

async function fresh<T>(f: (run: Runner) => Promise<T>): Promise<T> {
  const ns = await Lab.isolated()
  const run: Runner = (cmd, args, opts) =>
    runLocal('nsenter', [`--net=/run/netns/${ns.ns}`, cmd, ...args], opts)
  try {
    return await f(run)
  } finally {
    await ns.destroy()
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {}
  for (const backend of BACKENDS as readonly Backend[]) {
    const rows: Record<string, unknown> = {}
    for (const n of SIZES) {
      const d = compile(policyWithPeers(n), { backend, failsafe: DEFAULT_FAILSAFE })
      const reps = n >= 100_000 ? 3 : 5
      const oursTotal: number[] = []
      const oursApply: number[] = []
      const rawMs: number[] = []
      const peerChange: number[] = []
      const peerChangeWithRead: number[] = []
      const peerChangePlan: string[] = []
      for (let i = 0; i < reps; i++) {
        // Alternate which goes first so neither always meets a warmer kernel.
        const measureRaw = () => fresh(async (r) => rawMs.push((await timed(() => raw(r, d))).ms))
        const measureOurs = () =>
          fresh(async (r) => {
            const m = await ours(r, d)
            oursTotal.push(m.totalMs)
            oursApply.push(m.applyMs)
            // One address more, then one less: from the verified state, then with a full read.
            // Outside the peers' range: next to one of them, the two would merge into a /31.
            const one = policyWithPeers(n, 'coexistence_primary', ['203.0.113.7/32'])
            const added = compile(one, { backend, failsafe: DEFAULT_FAILSAFE })
            const change = await timed(() =>
              applyDesired(r, added, m.after, { modeChanged: false }),
            )
            peerChange.push(change.ms)
            peerChangePlan.push(change.value.plan.kind)
            expectApplied(added, change.value.after, 'after a one-address change, as verified')
            expectApplied(added, await readOwn(r, backend), 'after a one-address change, read')
            const withRead = await timed(async () =>
              applyDesired(r, d, await readOwn(r, backend), { modeChanged: false }),
            )
            peerChangeWithRead.push(withRead.ms)
            peerChangePlan.push(withRead.value.plan.kind)
            expectApplied(d, await readOwn(r, backend), 'after a one-address change back, read')
          })
        if (i % 2 === 0) {
          await measureRaw()
          await measureOurs()
        } else {
          await measureOurs()
          await measureRaw()
        }
      }
      const r = median(rawMs)
      rows[`peers${n}`] = {
        rawMs: +r.toFixed(1),
        oursApplyAndVerifyMs: +median(oursApply).toFixed(1),
        oursWithReadAndVerifyMs: +median(oursTotal).toFixed(1),
        applyAndVerifyRatio: +(median(oursApply) / r).toFixed(2),
        withReadAndVerifyRatio: +(median(oursTotal) / r).toFixed(2),
        oneAddressChangeMs: +median(peerChange).toFixed(1),
        oneAddressChangeWithFullReadMs: +median(peerChangeWithRead).toFixed(1),
        oneAddressChangePlan: [...new Set(peerChangePlan)].join(','),
        reps,
      }
    }
    out[backend] = rows
  }
  return out
}
