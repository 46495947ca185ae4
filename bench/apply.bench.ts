/**
 * Apply latency per backend for 1,000 / 10,000 / 100,000 peers, in fresh namespaces.
 * `ours` is what the agent does for a new policy, through the kernel dataplane it runs, with the
 * change monitor where the agent runs one: read our objects, diff, apply in one transaction per
 * table, read back what the apply changed and verify it (on nftables the apply goes to the
 * `nft -i` the agent keeps running, which the read started; on iptables-nft what the commits
 * left is known once the monitor reported them).
 * `raw` is the same rendered text fed straight to `nft -f` (or `ipset restore` +
 * `iptables-restore`), measured in the same run, on a host where nothing listens for changes;
 * `rawListened` the same while an `nft monitor` listens (nf_tables backends), as on a host the
 * agent runs on, where the kernel reports every change each commit makes, whoever makes it, and
 * `rawNotified` while one listens that reads nothing (the kernel's cost of those reports alone); on
 * nftables `rawSession` is that text included by an `nft -i` already running, on iptables
 * `rawShell` the same tools started by a shell already running (as the agent's tool shell starts
 * its commits): the floors for an apply that starts no tool.
 *
 * A one-address change is timed as the agent makes it: an enforcer over the kernel dataplane,
 * with the change monitor and the polling the agent runs on that backend, is handed the
 * compiled policy with one address more, then one less, five times each per repetition
 * (setDesired until settled: its read, diff, apply, verify and the read-back; the change goes to
 * the tool session the dataplane keeps for element changes, as in the agent). The compile of
 * that policy is timed apart (oneAddressCompileMs), and the garbage collector's pauses inside
 * each change are stated (oneAddressChangeGcMs: the collector pauses where the heap fills, and a
 * policy of 100,000 peers is 100,000 new strings). `oneAddressChangeWithFullReadMs` is the same
 * change after a full read (what a change after tampering, or without the monitor, costs). Each
 * change is then checked in the kernel for the address it changed, and the last one of each
 * repetition against a full read (not timed).
 *
 * Tools run through `nsenter --net`, which only switches the network namespace, as close as a
 * test can come to the agent running them in its own: `ip netns exec` also makes a mount
 * namespace, which costs more than a small nft run and would swamp the small sizes.
 */
import type { ProcessStarter, Runner } from '@palisade/agent'
import {
  applyDesired,
  DEFAULT_CONFIG,
  Enforcer,
  KernelDataplane,
  lookPacing,
  readOwn,
  runChecked,
  runLocal,
  startLocal,
  systemClock,
} from '@palisade/agent'
import type { Backend, Desired, Ruleset } from '@palisade/firewall'
import {
  BACKENDS,
  compile,
  NFT_TABLE,
  setName,
  diff,
  planApply,
  renderIpsetStage,
  renderIptablesRestore,
  renderNftScript,
} from '@palisade/firewall'
import { Lab } from '@palisade/lab'
import { DEFAULT_FAILSAFE } from '@palisade/model'
import { NFT_SESSION } from '../packages/agent/src/netfilter/session-protocol.js'
import { ToolSession } from '../packages/agent/src/netfilter/tool-session.js'
import { ToolShell } from '../packages/agent/src/netfilter/tool-shell.js'
import { BENCH_RULE_KEY, policyWithPeers } from './peers.js'
import { gcPauses, median, timed } from './stats.js'

const SIZES = (process.env.PALISADE_BENCH_SIZES ?? '1000,10000,100000').split(',').map(Number)
/** The address a one-address change adds and removes. */
const EXTRA = '203.0.113.7/32'
/** One-address changes per repetition: this many with one address more, as many with it gone. */
const ONE_ADDRESS_PAIRS = 5
const NO_STATE = { hooksFound: [], modeChanged: true, foreignToDelete: [], staleChains: [] }

/** The raw tools for `d`'s rendered text: `nft -f`, or `ipset restore` and `iptables-restore`. */
function rawCommands(d: Desired): [string, string[], string][] {
  if (d.backend === 'nftables') return [['nft', ['-f', '-'], renderNftScript(d)]]
  const variant = d.backend === 'iptables-legacy' ? 'legacy' : 'nft'
  return [
    ['ipset', ['restore'], renderIpsetStage(d.ipsets, new Set())],
    [`iptables-${variant}-restore`, ['--noflush'], renderIptablesRestore(d, 'ip', NO_STATE)],
    [`ip6tables-${variant}-restore`, ['--noflush'], renderIptablesRestore(d, 'ip6', NO_STATE)],
  ]
}

async function raw(run: Runner, d: Desired): Promise<void> {
  for (const [cmd, args, stdin] of rawCommands(d)) await runChecked(run, cmd, args, { stdin })
}

/**
 * The same tools started by a shell already running (and answering) when the clock starts, as
 * the agent's tool shell starts them (iptables): the floor for an apply that starts no tool.
 */
async function rawShell(start: ProcessStarter, d: Desired): Promise<number> {
  const shell = new ToolShell(start)
  try {
    await shell.list('ipset', ['list', '-n'])
    return (
      await timed(async () => {
        for (const [cmd, args, stdin] of rawCommands(d)) {
          const r = await shell.commit(cmd, args, stdin)
          if (r.code !== 0) throw new Error(`${cmd} refused the text: ${r.stderr}`)
        }
      })
    ).ms
  } finally {
    shell.close()
  }
}

/** The rendered text included by an `nft -i` started (and answering) before the clock starts. */
async function rawSession(start: ProcessStarter, d: Desired): Promise<number> {
  const session = new ToolSession(NFT_SESSION, start)
  try {
    await runSession(session, 'list tables\n')
    return (await timed(() => runSession(session, renderNftScript(d)))).ms
  } finally {
    session.close()
  }
}

async function runSession(session: ToolSession, script: string): Promise<void> {
  const a = await session.run(script)
  if (a.code !== 0) throw new Error(`nft -i refused the script: ${a.stderr}`)
}

async function ours(
  run: Runner,
  start: ProcessStarter,
  d: Desired,
): Promise<{ totalMs: number; applyMs: number }> {
  const dp = new KernelDataplane(run, d.backend, start, systemClock)
  const watch = d.backend === 'iptables-legacy' ? undefined : await monitorRunning(run, dp)
  try {
    // The agent keeps its tool session running between policies: a first read starts it.
    await dp.read({ elements: true })
    const t0 = performance.now()
    const actual = await dp.read({ elements: true })
    const t1 = performance.now()
    await dp.apply(d, actual, { modeChanged: false })
    const t2 = performance.now()
    // The first read after an apply is what the apply read back.
    expectApplied(d, await dp.read({ elements: true }), 'after apply, as verified')
    return { totalMs: t2 - t0, applyMs: t2 - t1 }
  } finally {
    watch?.stop()
    dp.close()
  }
}

/**
 * The change monitor, as the agent runs it where nf_tables reports changes, once it reports
 * one: on iptables-nft an apply then knows what its commits left once the monitor reported them,
 * instead of listing them back. The kernel reports every change a commit makes while a monitor
 * listens (each set element, on nftables), which costs the committing tool too.
 */
async function monitorRunning(run: Runner, dp: KernelDataplane): Promise<{ stop(): void }> {
  let heard = false
  const watch = dp.watch(() => (heard = true))
  await untilHeard(run, () => heard)
  return watch
}

/**
 * `raw` while an `nft monitor` listens, as on a host the agent runs on (see monitorRunning); with
 * `stopped`, one that was stopped (SIGSTOP) once it listened: the kernel still builds a report
 * of each change for it, which no process then reads or prints. That is the kernel's own cost of
 * being listened to, the floor for an apply on a host where anything follows nf_tables' changes.
 */
async function rawListened(
  run: Runner,
  start: ProcessStarter,
  d: Desired,
  opts: { readonly stopped: boolean },
): Promise<number> {
  let heard = false
  const ignore = () => undefined
  const monitor = start('nft', ['monitor'], {
    stdout: () => (heard = true),
    stderr: ignore,
    error: ignore,
    close: ignore,
  })
  const signal = (s: NodeJS.Signals) => {
    try {
      if (monitor.pid !== undefined) process.kill(monitor.pid, s)
    } catch {
      // It ended already: untilHeard or the measurement says so.
    }
  }
  try {
    await untilHeard(run, () => heard)
    if (opts.stopped) signal('SIGSTOP')
    return (await timed(() => raw(run, d))).ms
  } finally {
    if (opts.stopped) signal('SIGCONT')
    monitor.kill()
  }
}

/** Makes tables (not ours) until a monitor heard of one: it then listens. */
async function untilHeard(run: Runner, heard: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !heard(); i++) {
    await runChecked(run, 'nft', ['add', 'table', 'ip', `probe${i}`])
    await new Promise((r) => setTimeout(r, 20))
  }
  if (!heard()) throw new Error('the change monitor reported nothing in 2 s')
}

/**
 * Whether the kernel's set of the bench rule's IPv4 peers holds `address` (nft's `get element`, `ipset test`): a
 * check of one change that parses no listing. A full read's parse in this process, whose result
 * parse-nft keeps for the next, would leave 100,000 strings for the next change's collection.
 */
async function holds(run: Runner, d: Desired, address: string): Promise<boolean> {
  const ip = address.replace(/\/32$/, '')
  const name = setName(d.backend, BENCH_RULE_KEY, 4)
  const r =
    d.backend === 'nftables'
      ? await run('nft', ['get', 'element', 'inet', NFT_TABLE, name, `{ ${ip} }`])
      : await run('ipset', ['test', name, ip])
  return r.code === 0
}

function expectApplied(d: Desired, rs: Ruleset, when: string): void {
  const drifts = diff(d, rs)
  if (planApply(d, drifts).kind !== 'none')
    throw new Error(`${d.backend} ${when}: the kernel differs: ${drifts[0]?.kind ?? '?'}`)
}

/**
 * Runs `f` in a namespace of its own, then deletes it and waits `settleMs`: the kernel frees a
 * namespace's tables after its deletion, in the background (a set of 100,000 elements, tens of
 * ms of CPU), which would otherwise fall into the next measurement.
 */
async function fresh<T>(
  settleMs: number,
  f: (run: Runner, start: ProcessStarter) => Promise<T>,
): Promise<T> {
  const ns = await Lab.isolated()
  const net = `--net=/run/netns/${ns.ns}`
  const run: Runner = (cmd, args, opts) => runLocal('nsenter', [net, cmd, ...args], opts)
  const start: ProcessStarter = (cmd, args, on) => startLocal('nsenter', [net, cmd, ...args], on)
  try {
    return await f(run, start)
  } finally {
    await ns.destroy()
    await new Promise((r) => setTimeout(r, settleMs))
  }
}

/** An enforcer as the agent runs it on `backend`, over the kernel dataplane. */
function agentEnforcer(run: Runner, start: ProcessStarter, backend: Backend): Enforcer {
  const { lookMs, fullLookEvery } = lookPacing(backend, DEFAULT_CONFIG.pollMs)
  const enforcer = new Enforcer({
    dataplane: new KernelDataplane(run, backend, start, systemClock, { fullLookEvery }),
    clock: systemClock,
    pollMs: backend === 'nftables' ? null : DEFAULT_CONFIG.pollMs,
    lookMs,
    backstopMs: DEFAULT_CONFIG.backstopMs,
    fight: DEFAULT_CONFIG.fight,
    watchEvents: backend !== 'iptables-legacy',
    onEvent: () => undefined,
    onStatus: () => undefined,
  })
  enforcer.start()
  return enforcer
}

/** Hands the enforcer `d` and waits until it settled; fails unless it applied `d` healthily. */
async function enforce(e: Enforcer, d: Desired): Promise<string> {
  e.setDesired(d)
  await e.settled()
  const { health, applied, reason } = e.status
  if (health !== 'healthy' || applied?.version !== d.version)
    throw new Error(`${d.backend}: version ${d.version} not applied: ${reason ?? health}`)
  return applied.plan
}

export async function run(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {}
  const gc = gcPauses()
  for (const backend of BACKENDS as readonly Backend[]) {
    const rows: Record<string, unknown> = {}
    for (const n of SIZES) {
      const d = compile(policyWithPeers(n), { backend, failsafe: DEFAULT_FAILSAFE })
      const reps = n >= 100_000 ? 5 : 9
      const settleMs = n >= 100_000 ? 1500 : n >= 10_000 ? 200 : 0
      const oursTotal: number[] = []
      const oursApply: number[] = []
      const rawMs: number[] = []
      const rawSessionMs: number[] = []
      const rawListenedMs: number[] = []
      const rawNotifiedMs: number[] = []
      const rawShellMs: number[] = []
      const peerChange: number[] = []
      /** The collector's pauses inside each change (see gcPauses). */
      const peerChangeGc: number[] = []
      /** The change one way and the other: a delete (nft) waits for the kernel at the end. */
      const byWay: Record<'add' | 'remove', number[]> = { add: [], remove: [] }
      const compileMs: number[] = []
      const peerChangeWithRead: number[] = []
      const peerChangePlan: string[] = []
      for (let i = 0; i < reps; i++) {
        // Alternate which goes first so neither always meets a warmer kernel.
        const measureRaw = async () => {
          await fresh(settleMs, async (r) => rawMs.push((await timed(() => raw(r, d))).ms))
          if (backend !== 'iptables-legacy') {
            await fresh(settleMs, async (r, start) =>
              rawListenedMs.push(await rawListened(r, start, d, { stopped: false })),
            )
            await fresh(settleMs, async (r, start) =>
              rawNotifiedMs.push(await rawListened(r, start, d, { stopped: true })),
            )
          }
          if (backend === 'nftables')
            await fresh(settleMs, async (_, start) => rawSessionMs.push(await rawSession(start, d)))
          else await fresh(settleMs, async (_, start) => rawShellMs.push(await rawShell(start, d)))
        }
        const measureOurs = () =>
          fresh(settleMs, async (r, start) => {
            const m = await ours(r, start, d)
            oursTotal.push(m.totalMs)
            oursApply.push(m.applyMs)
            // The agent takes over what `ours` applied (it reads it once: nothing to change),
            // then gets one address more, then one less, and again. Outside the peers' range: next to one
            // of them, the two would merge into a /31.
            const e = agentEnforcer(r, start, backend)
            try {
              peerChangePlan.push(await enforce(e, d))
              const extra = [EXTRA]
              let last: Desired | undefined
              for (let k = 0; k < ONE_ADDRESS_PAIRS * 2; k++) {
                const [version, more] = [2 + k, k % 2 === 0 ? extra : []] as const
                const policy = { ...policyWithPeers(n, 'coexistence_primary', more), version }
                const c = await timed(() =>
                  compile(policy, { backend, failsafe: DEFAULT_FAILSAFE }),
                )
                compileMs.push(c.ms)
                const from = performance.now()
                const change = await timed(() => enforce(e, c.value))
                peerChange.push(change.ms)
                peerChangeGc.push(await gc.within(from, from + change.ms))
                byWay[more.length > 0 ? 'add' : 'remove'].push(change.ms)
                peerChangePlan.push(change.value)
                if ((await holds(r, c.value, EXTRA)) !== more.length > 0)
                  throw new Error(`${backend} at version ${version}: ${EXTRA} not as set`)
                last = c.value
              }
              if (last) expectApplied(last, await readOwn(r, backend), 'after the changes, read')
            } finally {
              e.stop()
            }
            const added = compile(policyWithPeers(n, 'coexistence_primary', [EXTRA]), {
              backend,
              failsafe: DEFAULT_FAILSAFE,
            })
            const withRead = await timed(async () =>
              applyDesired(r, added, await readOwn(r, backend), { modeChanged: false }),
            )
            peerChangeWithRead.push(withRead.ms)
            peerChangePlan.push(withRead.value.plan.kind)
            expectApplied(added, withRead.value.after, 'after a one-address change, as verified')
            expectApplied(added, await readOwn(r, backend), 'after a one-address change, read')
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
        ...(rawListenedMs.length > 0 && {
          rawListenedMs: +median(rawListenedMs).toFixed(1),
          applyAndVerifyToRawListenedRatio: +(median(oursApply) / median(rawListenedMs)).toFixed(2),
          rawNotifiedMs: +median(rawNotifiedMs).toFixed(1),
          applyAndVerifyToRawNotifiedRatio: +(median(oursApply) / median(rawNotifiedMs)).toFixed(2),
        }),
        ...(rawShellMs.length > 0 && {
          rawShellMs: +median(rawShellMs).toFixed(1),
          applyAndVerifyToRawShellRatio: +(median(oursApply) / median(rawShellMs)).toFixed(2),
        }),
        ...(rawSessionMs.length > 0 && {
          rawSessionMs: +median(rawSessionMs).toFixed(1),
          applyAndVerifyToRawSessionRatio: +(median(oursApply) / median(rawSessionMs)).toFixed(2),
        }),
        oneAddressChangeMs: +median(peerChange).toFixed(1),
        oneAddressAddMs: +median(byWay.add).toFixed(1),
        oneAddressRemoveMs: +median(byWay.remove).toFixed(1),
        oneAddressChangeGcMs: +median(peerChangeGc).toFixed(1),
        oneAddressChangeGcMaxMs: +Math.max(...peerChangeGc).toFixed(1),
        oneAddressCompileMs: +median(compileMs).toFixed(1),
        oneAddressChangeWithFullReadMs: +median(peerChangeWithRead).toFixed(1),
        oneAddressChangePlan: [...new Set(peerChangePlan)].join(','),
        reps,
      }
    }
    out[backend] = rows
  }
  gc.stop()
  return out
}
