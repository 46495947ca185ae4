/**
 * Apply latency per backend for 1,000 / 10,000 / 100,000 peers, in fresh namespaces.
 * `ours` is what the agent does for a new policy: read our objects, diff, apply in one
 * transaction per table, read back and verify. `raw` is the same rendered text fed straight to
 * `nft -f` (or `ipset restore` + `iptables-restore`), measured in the same run. Also the cost of
 * a one-peer change, which the agent makes as a set-element update.
 */
import type { Runner } from '@palisade/agent'
import { applyDesired, readOwn, runChecked } from '@palisade/agent'
import type { Backend, Desired } from '@palisade/firewall'
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

async function ours(run: Runner, d: Desired): Promise<{ totalMs: number; applyMs: number }> {
  const t0 = performance.now()
  const actual = await readOwn(run, d.backend)
  const t1 = performance.now()
  await applyDesired(run, d, actual, { modeChanged: false })
  const t2 = performance.now()
  const after = await readOwn(run, d.backend)
  if (planApply(d, diff(d, after)).kind !== 'none')
    throw new Error(`${d.backend}: the kernel differs after apply`)
  return { totalMs: performance.now() - t0, applyMs: t2 - t1 }
}

async function fresh<T>(f: (run: Runner) => Promise<T>): Promise<T> {
  const ns = await Lab.isolated()
  try {
    return await f(ns.run)
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
      const peerDelta: number[] = []
      const peerChangePlan: string[] = []
      for (let i = 0; i < reps; i++) {
        // Alternate which goes first so neither always meets a warmer kernel.
        const measureRaw = () => fresh(async (r) => rawMs.push((await timed(() => raw(r, d))).ms))
        const measureOurs = () =>
          fresh(async (r) => {
            const m = await ours(r, d)
            oursTotal.push(m.totalMs)
            oursApply.push(m.applyMs)
            const p = policyWithPeers(n, 'coexistence_primary', ['198.19.255.1/32'])
            const changed = compile(p, { backend, failsafe: DEFAULT_FAILSAFE })
            const read = await timed(() => readOwn(r, backend))
            const t = await timed(() =>
              applyDesired(r, changed, read.value, { modeChanged: false }),
            )
            peerChange.push(read.ms + t.ms)
            peerDelta.push(t.ms)
            peerChangePlan.push(t.value.kind)
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
        oursApplyMs: +median(oursApply).toFixed(1),
        oursWithReadAndVerifyMs: +median(oursTotal).toFixed(1),
        applyRatio: +(median(oursApply) / r).toFixed(2),
        withReadAndVerifyRatio: +(median(oursTotal) / r).toFixed(2),
        onePeerChangeWithReadMs: +median(peerChange).toFixed(1),
        onePeerDeltaMs: +median(peerDelta).toFixed(1),
        onePeerChangePlan: [...new Set(peerChangePlan)].join(','),
        reps,
      }
    }
    out[backend] = rows
  }
  return out
}
