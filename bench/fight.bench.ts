/**
 * A fight: another process makes the same change to our rules every 500 ms for 20 s (a
 * misbehaving script, another firewall manager; PALISADE_BENCH_FIGHT_EVERY_MS and _FIGHT_MS
 * change both), against a real agent with its fight handling as configured by default, on each
 * backend, at 1,000 peers. Measured from outside the agent:
 *
 * - gaps: each time our rules were missing from the kernel, from the start of the foreign
 *   command until a read that began after the command had ended found them back. A sampler
 *   reads our input chain over and over meanwhile (a terse `nft list ruleset` from one shell
 *   that stays running where nf_tables holds the rules, iptables-legacy-save otherwise; see
 *   rules-probe.ts), so a gap is over-stated
 *   by the foreign command's own start-up (foreignCommandMs) and up to one read. A gap ends
 *   only with a read after the latest change: in a tight loop (EVERY_MS 0) there is none, and
 *   that run measures the agent's CPU and repairs, not gaps.
 * - the agent's CPU over the fight (its own and its tools', seconds per second of wall time),
 *   beside the same agent's CPU while nothing happens, measured just before.
 * - the tampering events it recorded during the fight, and the repairs its status counts.
 */
import type { Runner } from '@palisade/agent'
import { runChecked, runLocal } from '@palisade/agent'
import type { Backend } from '@palisade/firewall'
import { BACKENDS } from '@palisade/firewall'
import { Lab, LabAgent, resetFirewall } from '@palisade/lab'
import { policyFileWithPeers } from './peers.js'
import type { Reader } from './rules-probe.js'
import { cpuSeconds, nftReader, shellReader } from './rules-probe.js'
import { summary } from './stats.js'

const FIGHT_MS = Number(process.env.PALISADE_BENCH_FIGHT_MS ?? 20_000)
/** 0: a tight loop, each change as soon as the last one's command ended. */
const EVERY_MS = Number(process.env.PALISADE_BENCH_FIGHT_EVERY_MS ?? 500)
const IDLE_MS = 10_000
/** After the last foreign change, how long the agent may take to repair before we give up. */
const LAST_REPAIR_MS = 40_000

/** The foreign change, and a reader of our input chain that tells whether our rules are there. */
const FIGHT: Record<
  Backend,
  { change: string[]; reader: (ns: string) => Reader; present: RegExp }
> = {
  nftables: {
    change: ['nft', 'flush', 'chain', 'inet', 'palisade', 'input'],
    reader: (ns) => nftReader(ns, 'inet palisade input'),
    present: /dport 8080/,
  },
  'iptables-nft': {
    change: ['iptables-nft', '-w', '-F', 'PALISADE-INPUT'],
    reader: (ns) => nftReader(ns, 'ip filter PALISADE-INPUT'),
    present: /dport 8080/,
  },
  'iptables-legacy': {
    change: ['iptables-legacy', '-w', '-F', 'PALISADE-INPUT'],
    // iptables-save takes no xtables lock, so the sampler never delays the agent.
    reader: (ns) => shellReader(ns, 'iptables-legacy-save -t filter', (l) => l),
    present: /^-A PALISADE-INPUT .*--dport 8080/m,
  },
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Sample {
  readonly start: number
  readonly end: number
  readonly present: boolean
}
interface Change {
  readonly start: number
  readonly end: number
}

/**
 * The intervals our rules were missing: each begins at a foreign change made while they were
 * there, and ends with the first read that began after that change had ended and found them.
 */
function gaps(changes: readonly Change[], samples: readonly Sample[]): number[] {
  const out: number[] = []
  let missing: Change | undefined
  let latest: Change | undefined
  const timeline: Array<{ at: number; change?: Change; sample?: Sample }> = [
    ...changes.map((change) => ({ at: change.start, change })),
    ...samples.map((sample) => ({ at: sample.end, sample })),
  ].sort((a, b) => a.at - b.at)
  for (const { change, sample } of timeline) {
    if (change) {
      missing ??= change
      latest = change
    } else if (sample && missing && latest && sample.present && sample.start > latest.end) {
      out.push(sample.end - missing.start)
      missing = undefined
    }
  }
  if (missing) out.push(Infinity)
  return out
}

async function fight(ns: string, run: Runner, agent: LabAgent, backend: Backend, hz: number) {
  const pid = agent.pid ?? NaN
  const { change, reader, present } = FIGHT[backend]
  const [cmd = '', ...args] = change

  const idle0 = await cpuSeconds(pid, hz)
  await sleep(IDLE_MS)
  const idle1 = await cpuSeconds(pid, hz)

  const eventsBefore = (await agent.events()).length
  const repairsBefore = (await agent.status())?.enforcement.tampering.repairs ?? 0
  const changes: Change[] = []
  const samples: Sample[] = []
  let sampling = true
  const probe = reader(ns)
  const sampler = (async () => {
    while (sampling) {
      const start = performance.now()
      const out = await probe.read()
      samples.push({ start, end: performance.now(), present: present.test(out) })
      await sleep(2)
    }
  })()

  const t0 = performance.now()
  const cpu0 = await cpuSeconds(pid, hz)
  for (let k = 0; k * EVERY_MS < FIGHT_MS && performance.now() - t0 < FIGHT_MS; k++) {
    await sleep(t0 + k * EVERY_MS - performance.now())
    const start = performance.now()
    await runChecked(run, cmd, args)
    changes.push({ start, end: performance.now() })
  }
  await sleep(t0 + FIGHT_MS - performance.now())
  const cpu1 = await cpuSeconds(pid, hz)
  const wall = (performance.now() - t0) / 1000
  // The last change is repaired when a read after it finds our rules again.
  const last = changes[changes.length - 1]
  while (
    last &&
    performance.now() - last.end < LAST_REPAIR_MS &&
    !samples.some((s) => s.start > last.end && s.present)
  )
    await sleep(20)
  sampling = false
  await sampler
  probe.stop()

  const found = gaps(changes, samples)
  const events = (await agent.events())
    .slice(eventsBefore)
    .filter((e) => e.event_type === 'agent.tampering')
  const perSecond = (a: { own: number; tools: number }, b: typeof a, s: number) => ({
    own: +((b.own - a.own) / s).toFixed(3),
    tools: +((b.tools - a.tools) / s).toFixed(3),
  })
  return {
    foreignChanges: changes.length,
    foreignCommandMs: summary(changes.map((c) => c.end - c.start)),
    gapsMs: summary(found),
    missingShare: +(found.reduce((a, b) => a + b, 0) / (wall * 1000)).toFixed(3),
    samples: samples.length,
    cpuPerSecondIdle: perSecond(idle0, idle1, IDLE_MS / 1000),
    cpuPerSecondFighting: perSecond(cpu0, cpu1, wall),
    repairs: ((await agent.status())?.enforcement.tampering.repairs ?? 0) - repairsBefore,
    tamperingEvents: events.map((e) => String(e.details.condition)),
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const hz = Number((await runChecked(runLocal, 'getconf', ['CLK_TCK'])).trim())
  const lab = await Lab.create(['fight'])
  const h = lab.host('fight')
  const out: Record<string, unknown> = { fightMs: FIGHT_MS, everyMs: EVERY_MS, peers: 1000 }
  try {
    for (const backend of BACKENDS) {
      const agent = await LabAgent.start(h.ns, backend, policyFileWithPeers(1000), {})
      try {
        out[backend] = await fight(h.ns, h.run, agent, backend, hz)
      } finally {
        await agent.cleanup()
        await resetFirewall(h.run)
      }
    }
  } finally {
    await lab.destroy()
  }
  return out
}
