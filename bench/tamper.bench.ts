/**
 * Tampering detect-and-repair latency of a real agent process, per backend and scenario, for a
 * 1,000-peer and a 100,000-peer policy: from the start of the tampering command until the agent
 * has repaired, verified and recorded it (its status counts the repair). Also the agent's
 * resident memory while idle and its peak while applying the 100,000-peer policy.
 */
import type { Runner } from '@palisade/agent'
import { runChecked } from '@palisade/agent'
import type { Backend } from '@palisade/firewall'
import { BACKENDS } from '@palisade/firewall'
import { Lab, LabAgent, resetFirewall, waitFor } from '@palisade/lab'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { policyFileWithPeers } from './peers.js'
import { summary } from './stats.js'

const TRIALS = Number(process.env.PALISADE_BENCH_TAMPER_TRIALS ?? 100)
const BIG_TRIALS = Number(process.env.PALISADE_BENCH_TAMPER_BIG_TRIALS ?? 20)

const SCENARIOS: Record<Backend, Record<string, string[]>> = {
  nftables: {
    'flush our input chain': ['nft', 'flush', 'chain', 'inet', 'palisade', 'input'],
    'insert a rule into our chain': [
      'nft',
      'insert',
      'rule',
      'inet',
      'palisade',
      'input',
      'tcp',
      'dport',
      '9',
      'accept',
    ],
  },
  'iptables-nft': {
    'flush our input chain': ['iptables-nft', '-F', 'PALISADE-INPUT'],
    'delete our hook': ['iptables-nft', '-D', 'INPUT', '1'],
  },
  'iptables-legacy': {
    'flush our input chain': ['iptables-legacy', '-F', 'PALISADE-INPUT'],
    'delete our hook': ['iptables-legacy', '-D', 'INPUT', '1'],
  },
}

async function rssKb(pid: number): Promise<{ rss: number; peak: number }> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN)
  return { rss: kb('VmRSS'), peak: kb('VmHWM') }
}

async function trials(
  run: Runner,
  agent: LabAgent,
  cmd: string[],
  count: number,
): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < count; i++) {
    const before = (await agent.status())?.enforcement.tampering.repairs ?? 0
    const t0 = performance.now()
    await runChecked(run, cmd[0] ?? '', cmd.slice(1))
    await waitFor(
      `repair #${i + 1} after ${cmd.join(' ')} (agent log: ${agent.log.slice(-400)})`,
      async () =>
        ((await agent.status())?.enforcement.tampering.repairs ?? 0) > before ? true : undefined,
      30_000,
    )
    out.push(performance.now() - t0)
  }
  return out
}

export async function run(): Promise<Record<string, unknown>> {
  const lab = await Lab.create(['bench'])
  const h = lab.host('bench')
  const out: Record<string, unknown> = { trials: TRIALS, bigTrials: BIG_TRIALS }
  try {
    for (const backend of BACKENDS) {
      const rows: Record<string, unknown> = {}
      for (const [n, count] of [
        [1_000, TRIALS],
        [100_000, BIG_TRIALS],
      ] as const) {
        const agent = await LabAgent.start(h.ns, backend, policyFileWithPeers(n), {})
        // Back-to-back trials are a fight to the agent: keep its pacing (a rest between repairs,
        // the status published once a second) out of these single-repair figures.
        const cfgPath = join(agent.stateDir, 'config.json')
        const cfg = JSON.parse(await readFile(cfgPath, 'utf8')) as Record<string, unknown>
        await writeFile(
          cfgPath,
          JSON.stringify({ ...cfg, fight: { windowMs: 1, threshold: 1_000_000 } }),
        )
        await agent.stop()
        agent.spawn()
        await agent.waitApplied(1, 60_000)
        try {
          if (n === 1_000 && agent.pid) rows.agentIdleRssKb = (await rssKb(agent.pid)).rss
          for (const [name, cmd] of Object.entries(SCENARIOS[backend]))
            rows[`${name}, ${n} peers`] = summary(await trials(h.run, agent, cmd, count))
          if (n === 100_000 && agent.pid)
            rows.agentPeakRssKbWith100000Peers = (await rssKb(agent.pid)).peak
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
