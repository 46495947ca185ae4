/**
 * Tampering detect-and-repair latency of a real agent process, per backend and scenario, for a
 * 1,000-peer and a 100,000-peer policy, measured from outside the agent: from the start of the
 * tampering command until a read of the kernel that began after the command had ended finds our
 * rules whole again (a reader in the namespace, as bench/fight.bench.ts has; a figure is
 * over-stated by up to one read). The agent runs as configured by default, its fight handling
 * included. The changes are isolated: each comes as long after the last repair as that took,
 * plus 0.2 to 0.6 s at random (so it falls at any phase of a poll); bench/fight.bench.ts times
 * changes that come faster.
 *
 * Also, per backend and size: the agent's CPU while nothing happens (its own and its tools',
 * seconds per second; iptables-legacy and ipsets are polled), and its memory from
 * /proc/PID/status: resident while idle, and the peak of the whole run. The agent runs from the
 * build (`npm run bench` builds first), as installed: from source, the on-the-fly compiler
 * would count in its memory.
 */
import type { Runner } from '@palisade/agent'
import { DEFAULT_CONFIG, runChecked, runLocal } from '@palisade/agent'
import type { Backend } from '@palisade/firewall'
import { BACKENDS } from '@palisade/firewall'
import { Lab, LabAgent, resetFirewall } from '@palisade/lab'
import { policyFileWithPeers } from './peers.js'
import type { Reader } from './rules-probe.js'
import { commandReader, cpuSeconds, nftReader, rssKb } from './rules-probe.js'
import { summary } from './stats.js'

const TRIALS = Number(process.env.PALISADE_BENCH_TAMPER_TRIALS ?? 120)
const BIG_TRIALS = Number(process.env.PALISADE_BENCH_TAMPER_BIG_TRIALS ?? 110)
const SIZES = (process.env.PALISADE_BENCH_TAMPER_PEERS ?? '1000,100000').split(',').map(Number)
const ONLY = process.env.PALISADE_BENCH_BACKENDS?.split(',')
const IDLE_MS = 15_000
/** The agent polls what emits no events (iptables-legacy rules, ipsets): the CPU per poll. */
const POLL_MS: Record<Backend, number | null> = {
  nftables: null,
  'iptables-nft': DEFAULT_CONFIG.pollMs,
  'iptables-legacy': DEFAULT_CONFIG.pollMs,
}

interface Scenario {
  /** The foreign change. */
  readonly cmd: string[]
  /** What to read, and whether a listing shows our rules whole again. */
  readonly reader: (ns: string, run: Runner) => Reader
  readonly repaired: (listing: string) => boolean
}

const legacySave = (_: string, run: Runner) =>
  commandReader(run, ['iptables-legacy-save', '-t', 'filter'])

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

async function trials(ns: string, run: Runner, s: Scenario, count: number): Promise<number[]> {
  const probe = s.reader(ns, run)
  const [cmd = '', ...args] = s.cmd
  const out: number[] = []
  try {
    if (!s.repaired(await probe.read())) throw new Error(`our rules are not whole before ${cmd}`)
    for (let i = 0; i < count; i++) {
      const t0 = performance.now()
      await runChecked(run, cmd, args)
      const changed = performance.now()
      for (;;) {
        const start = performance.now()
        const listing = await probe.read()
        if (start > changed && s.repaired(listing)) break
        if (start - t0 > 30_000)
          throw new Error(`no repair within 30 s after ${s.cmd.join(' ')} (trial ${i + 1})`)
        await sleep(2)
      }
      const ms = performance.now() - t0
      out.push(ms)
      await sleep(ms + 200 + Math.random() * 400)
    }
  } finally {
    probe.stop()
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
          const pollMs = POLL_MS[backend]
          rows[`idle, ${n} peers`] = {
            cpuPerSecond: { own: +own.toFixed(4), tools: +tools.toFixed(4) },
            // All the idle work (the backstop read, heartbeats) shared out over the polls.
            ...(pollMs !== null && { cpuMsPerPoll: +((own + tools) * pollMs).toFixed(2) }),
            rssKb: (await rssKb(pid)).rss,
          }
          for (const [name, s] of Object.entries(SCENARIOS[backend]))
            rows[`${name}, ${n} peers`] = summary(
              await trials(h.ns, h.run, s, n > 10_000 ? BIG_TRIALS : TRIALS),
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
