/**
 * What flow collection costs: new TCP connections per second between two namespaces with the
 * real agent enforcing one policy at `flow_summary`, as a ratio to the same policy at
 * `flow_off` (interleaved rounds, each backend), and how many of the connections made the flow
 * summaries counted.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Backend } from '@palisade/firewall'
import { BACKENDS } from '@palisade/firewall'
import { Lab, LabAgent, LabPeer, resetFirewall } from '@palisade/lab'
import { median } from './stats.js'

const PORT = 8080
const RATE_SECONDS = Number(process.env.PALISADE_BENCH_RATE_SECONDS ?? 4)
const ROUNDS = 5

const policy = (version: number, visibility: string, client: string) => ({
  version,
  enforcement_mode: 'full',
  visibility_level: visibility,
  rules: [
    {
      action: 'allow',
      direction: 'inbound',
      peers: [client],
      services: [{ proto: 6, port: PORT }],
    },
  ],
})

/** Connections the agent's flow summaries counted, from its outbox (the agent has stopped). */
async function countedConnections(stateDir: string): Promise<number> {
  const text = await readFile(join(stateDir, 'flows.jsonl'), 'utf8').catch(() => '')
  return text
    .split('\n')
    .filter(Boolean)
    .map(
      (l) => JSON.parse(l) as { port?: number; policy_decision: string; num_connections: number },
    )
    .filter((f) => f.port === PORT && f.policy_decision === 'allowed')
    .reduce((n, f) => n + f.num_connections, 0)
}

export async function run(): Promise<Record<string, unknown>> {
  const lab = await Lab.create(['client', 'server'])
  const client = LabPeer.start(lab.host('client').ns)
  const server = LabPeer.start(lab.host('server').ns)
  const out: Record<string, unknown> = {}
  try {
    const s = lab.host('server')
    const c = lab.host('client').ip4
    await server.listen([PORT], [])
    for (const backend of BACKENDS as readonly Backend[]) {
      const samples: Record<'off' | 'summary', number[]> = { off: [], summary: [] }
      let made = 0
      let version = 1
      const agent = await LabAgent.start(s.ns, backend, policy(version, 'flow_off', c))
      try {
        for (let round = 0; round < ROUNDS; round++) {
          for (const level of ['off', 'summary'] as const) {
            version++
            await agent.writePolicy(policy(version, `flow_${level}`, c))
            await agent.waitApplied(version)
            const r = await client.connectionRate(s.ip4, PORT, RATE_SECONDS)
            samples[level].push(r.perSecond)
            if (level === 'summary') made += r.connections
          }
        }
      } finally {
        await agent.stop()
      }
      const counted = await countedConnections(agent.stateDir)
      await agent.cleanup()
      // A stopped agent leaves its rules in place: the next backend must not log through them.
      await resetFirewall(s.run)
      const off = median(samples.off)
      const summary = median(samples.summary)
      out[backend] = {
        flowOffPerSecond: Math.round(off),
        flowSummaryPerSecond: Math.round(summary),
        ratio: +(summary / off).toFixed(3),
        // every round, so that the spread of the medians can be read
        offSamples: samples.off.map(Math.round),
        summarySamples: samples.summary.map(Math.round),
        connectionsMade: made,
        connectionsCounted: counted,
      }
    }
  } finally {
    await client.stop()
    await server.stop()
    await lab.destroy()
  }
  return out
}
