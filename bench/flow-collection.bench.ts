/**
 * What flow collection costs: new TCP connections per second between two namespaces with the
 * real agent enforcing one policy at `flow_summary`, as a ratio to the same policy at
 * `flow_off` (interleaved rounds, each backend), and how many of the connections made the flow
 * summaries counted. The agent counts allowed connections in the kernel and reads the counts
 * once per interval (`collection` says whether it did in every round; an iptables agent logs
 * until a survey shows its hooks, which its first flow_summary round may meet). The
 * load comes from enough client processes that the client is not what limits the rate (see
 * connection-rate.ts; the scaling without rules is in the output).
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Backend } from '@palisade/firewall'
import { BACKENDS } from '@palisade/firewall'
import { LabAgent, resetFirewall } from '@palisade/lab'
import { inRateLab, rateSpread, ratioSpread } from './connection-rate.js'

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

export function run(): Promise<Record<string, unknown>> {
  return inRateLab(PORT, RATE_SECONDS, ROUNDS, async ({ server: s, client, rate }) => {
    const out: Record<string, unknown> = {}
    for (const backend of BACKENDS as readonly Backend[]) {
      const samples: Record<'off' | 'summary', number[]> = { off: [], summary: [] }
      let made = 0
      let failed = 0
      let version = 1
      const collection = new Set<string>()
      const agent = await LabAgent.start(s.ns, backend, policy(version, 'flow_off', client.ip4))
      try {
        for (let round = 0; round < ROUNDS; round++) {
          for (const level of ['off', 'summary'] as const) {
            version++
            await agent.writePolicy(policy(version, `flow_${level}`, client.ip4))
            await agent.waitApplied(version)
            const r = await rate().catch((e: Error) => {
              throw new Error(`${backend} at flow_${level}, round ${round + 1}: ${e.message}`)
            })
            // asked after the round: the status written as a policy applies can predate the
            // collector taking up the policy's level
            if (level === 'summary')
              collection.add(
                (await agent.status())?.flows?.readers.counting?.startsWith('running') === true
                  ? 'kernel counts'
                  : 'netlink log',
              )
            samples[level].push(r.perSecond)
            if (level === 'summary') {
              made += r.connections
              failed += r.failures
            }
          }
        }
      } finally {
        await agent.stop()
      }
      const counted = await countedConnections(agent.stateDir)
      await agent.cleanup()
      // A stopped agent leaves its rules in place: the next backend must not log through them.
      await resetFirewall(s.run)
      out[backend] = {
        collection: [...collection].join(', '),
        flowOffPerSecond: rateSpread(samples.off),
        flowSummaryPerSecond: rateSpread(samples.summary),
        // each round's pair, measured back to back
        ratio: ratioSpread(samples.summary.map((x, i) => x / (samples.off[i] ?? NaN))),
        connectionsMade: made,
        // attempts that did not connect (timeouts): the firewall saw them but they are not made
        connectionsFailed: failed,
        connectionsCounted: counted,
      }
    }
    return out
  })
}
