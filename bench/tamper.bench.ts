/**
 * Tampering detect-and-repair latency of a real agent process, per backend and scenario, for a
 * 1,000-peer and a 100,000-peer policy, measured from outside the agent: how long our rules
 * were not whole in the kernel (see gapSeen and gapPolled). Where nf_tables reports changes the
 * readers wait for its events: a reader that listed with 2 ms pauses (as this did before) kept
 * one of the two cores busy, and the agent's repair waited for it. The agent runs as configured
 * by default, its fight handling included. The changes are isolated: each comes as long after the last repair as that took,
 * plus 0.2 to 0.6 s at random (so it falls at any phase of a poll); bench/fight.bench.ts times
 * changes that come faster.
 *
 * Also, per backend and size: the agent's CPU while nothing happens (its own and its tools',
 * seconds per second; iptables-legacy and ipsets are looked at by polling), and its memory from
 * /proc/PID/status: resident while idle, and the peak of the whole run. The agent runs from the
 * build (`npm run bench` builds first), as installed: from source, the on-the-fly compiler
 * would count in its memory.
 */
import type { Runner } from '@palisade/agent'
import { runChecked, runLocal } from '@palisade/agent'
import type { Backend } from '@palisade/firewall'
import { BACKENDS } from '@palisade/firewall'
import { Lab, LabAgent, resetFirewall } from '@palisade/lab'
import { policyFileWithPeers } from './peers.js'
import type { Reader } from './rules-probe.js'
import { cpuSeconds, generationWatch, nftReader, rssKb, shellReader } from './rules-probe.js'
import { summary } from './stats.js'

const TRIALS = Number(process.env.PALISADE_BENCH_TAMPER_TRIALS ?? 120)
const BIG_TRIALS = Number(process.env.PALISADE_BENCH_TAMPER_BIG_TRIALS ?? 110)
const SIZES = (process.env.PALISADE_BENCH_TAMPER_PEERS ?? '1000,100000').split(',').map(Number)
const ONLY = process.env.PALISADE_BENCH_BACKENDS?.split(',')
const IDLE_MS = 15_000

interface Scenario {
  /** The foreign change. */
  readonly cmd: string[]
  /** What to read, and whether a listing shows our rules whole again. */
  readonly reader: (ns: string) => Reader
  readonly repaired: (listing: string) => boolean
}

const legacySave = (ns: string) => shellReader(ns, 'iptables-legacy-save -t filter', (l) => l)

const SCENARIOS: Record<Backend, Record<string, Scenario>> = {
  nftables: {
    'flush our input chain': {
      cmd: ['nft', 'flush', 'chain', 'inet', 'palisade', 'input'],
      reader: (ns) => nftReader(ns, 'inet palisade input'),
      repaired: (l) => /dport 8080/.test(l),
    },
    'insert a rule into our chain': {
      cmd: ['nft', 'insert', 'rule', 'inet', 'palisade', 'input', 'tcp', 'dport', '9', 'accept'],
      reader: (ns) => nftReader(ns, 'inet palisade input'),
      repaired: (l) => /dport 8080/.test(l) && !/dport 9 accept/.test(l),
    },
  },
  'iptables-nft': {
    'flush our input chain': {
      cmd: ['iptables-nft', '-w', '-F', 'PALISADE-INPUT'],
      reader: (ns) => nftReader(ns, 'ip filter PALISADE-INPUT'),
      repaired: (l) => /dport 8080/.test(l),
    },
    'delete our hook': {
      cmd: ['iptables-nft', '-w', '-D', 'INPUT', '1'],
      reader: (ns) => nftReader(ns, 'ip filter INPUT'),
      repaired: (l) => /jump PALISADE-INPUT/.test(l),
    },
  },
  'iptables-legacy': {
    'flush our input chain': {
      cmd: ['iptables-legacy', '-w', '-F', 'PALISADE-INPUT'],
      reader: legacySave,
      repaired: (l) => /^-A PALISADE-INPUT .*--dport 8080/m.test(l),
    },
    'delete our hook': {
      cmd: ['iptables-legacy', '-w', '-D', 'INPUT', '1'],
      reader: legacySave,
      repaired: (l) => /^-A INPUT .*-j PALISADE-INPUT/m.test(l),
    },
  },
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Now on CLOCK_MONOTONIC, in ms: the clock the generations are stamped on. */
const monotonicMs = () => Number(process.hrtime.bigint()) / 1e6

/**
 * The gap one change left, where nf_tables reports changes (nftables, iptables-nft): from the
 * change's generation, as a monitor in the namespace saw it come, to the generation after which
 * our rules read whole again. A read that finds them whole began after a generation by another
 * process than the changer's had come; the gap ends at the last generation stamped before that
 * read answered (looked for 20 ms after, for a line still on its way): the repair is among
 * them, and a figure may over-state the gap by the others, never under-state it.
 */
async function gapSeen(
  run: Runner,
  s: Scenario,
  probe: Reader,
  gens: ReturnType<typeof generationWatch>,
): Promise<number> {
  const [cmd = '', ...args] = s.cmd
  const from = gens.seen.length
  const r = await run(cmd, args)
  if (r.code !== 0 || r.pid === undefined) throw new Error(`${s.cmd.join(' ')}: ${r.stderr}`)
  const pid = r.pid
  const changed = gens.seen[await gens.next(from, (g) => g.pid === pid, 30_000)]?.at ?? NaN
  let next = from
  for (;;) {
    await gens.next(next, (g) => g.pid !== pid, 30_000)
    next = gens.seen.length
    const whole = s.repaired(await probe.read())
    const answered = monotonicMs()
    if (!whole) continue
    await sleep(20)
    const ends = gens.seen.slice(from).filter((g) => g.pid !== pid && g.at <= answered)
    const end = Math.max(...ends.map((g) => g.at))
    if (!(end >= changed)) throw new Error(`no repair generation after ${s.cmd.join(' ')}`)
    return end - changed
  }
}

/**
 * The gap one change left on iptables-legacy, which reports none: from the start of the
 * changing command until a read that began after the command had ended finds our rules whole
 * (over-stated by the command's start and by up to one read and pause).
 */
async function gapPolled(run: Runner, s: Scenario, probe: Reader): Promise<number> {
  const [cmd = '', ...args] = s.cmd
  const t0 = performance.now()
  await runChecked(run, cmd, args)
  const changed = performance.now()
  for (;;) {
    const start = performance.now()
    const listing = await probe.read()
    if (start > changed && s.repaired(listing)) return performance.now() - t0
    if (start - t0 > 30_000) throw new Error(`no repair within 30 s after ${s.cmd.join(' ')}`)
    await sleep(5)
  }
}

async function trials(
  ns: string,
  run: Runner,
  backend: Backend,
  s: Scenario,
  count: number,
): Promise<number[]> {
  const probe = s.reader(ns)
  const gens = backend === 'iptables-legacy' ? undefined : generationWatch(ns)
  const out: number[] = []
  try {
    await gens?.ready(run)
    if (!s.repaired(await probe.read()))
      throw new Error(`our rules are not whole before ${s.cmd[0]}`)
    for (let i = 0; i < count; i++) {
      const ms = gens ? await gapSeen(run, s, probe, gens) : await gapPolled(run, s, probe)
      out.push(ms)
      await sleep(ms + 200 + Math.random() * 400)
    }
  } finally {
    probe.stop()
    gens?.stop()
  }
  return out
}

export async function run(): Promise<Record<string, unknown>> {
  const hz = Number((await runChecked(runLocal, 'getconf', ['CLK_TCK'])).trim())
  process.env.PALISADE_LAB_BUILD = '1'
  const lab = await Lab.create(['bench'])
  const h = lab.host('bench')
  const out: Record<string, unknown> = { trials: TRIALS, bigTrials: BIG_TRIALS }
  try {
    for (const backend of BACKENDS.filter((b) => !ONLY || ONLY.includes(b))) {
      const rows: Record<string, unknown> = {}
      for (const n of SIZES) {
        const agent = await LabAgent.launch(h.ns, backend, policyFileWithPeers(n))
        await agent.waitApplied(1, 120_000)
        const pid = agent.pid ?? NaN
        try {
          const c0 = await cpuSeconds(pid, hz)
          await sleep(IDLE_MS)
          const c1 = await cpuSeconds(pid, hz)
          const own = (c1.own - c0.own) / (IDLE_MS / 1000)
          const tools = (c1.tools - c0.tools) / (IDLE_MS / 1000)
          rows[`idle, ${n} peers`] = {
            cpuPerSecond: { own: +own.toFixed(4), tools: +tools.toFixed(4) },
            rssKb: (await rssKb(pid)).rss,
          }
          for (const [name, s] of Object.entries(SCENARIOS[backend]))
            rows[`${name}, ${n} peers`] = summary(
              await trials(h.ns, h.run, backend, s, n > 10_000 ? BIG_TRIALS : TRIALS),
            )
          rows[`peak, ${n} peers`] = { rssKb: (await rssKb(pid)).peak }
          // Progress on stderr: a long run that is stopped still shows what it measured.
          console.error(JSON.stringify({ backend, peers: n, ...rows }))
        } finally {
          await agent.cleanup()
          await resetFirewall(h.run)
        }
      }
      out[backend] = rows
    }
  } finally {
    await lab.destroy()
  }
  return out
}
