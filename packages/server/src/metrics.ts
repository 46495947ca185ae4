import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import type { Database } from './db/schema.js'
import type { HostPolicyFeed } from './host-policy/change-feed.js'
import { agentsByStatus, agentsInSync } from './stores/agents.js'
import { latestVersion } from './stores/versions.js'

/** Prometheus text exposition of what an operator watches: requests, agents, policy. */
export function registerMetrics(
  app: FastifyInstance,
  db: Kysely<Database>,
  feed: HostPolicyFeed,
  guard: (req: FastifyRequest) => Promise<void>,
): void {
  const requests = new Map<string, number>()
  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched'
    const key = `method="${req.method}",route="${route}",status="${reply.statusCode}"`
    requests.set(key, (requests.get(key) ?? 0) + 1)
    done()
  })
  app.get('/metrics', async (req, reply) => {
    await guard(req)
    const byStatus = await agentsByStatus(db)
    const inSync = await agentsInSync(db)
    const version = await latestVersion(db)
    const lines = [
      '# HELP palisade_http_requests_total HTTP requests answered, by method, route and status.',
      '# TYPE palisade_http_requests_total counter',
      ...[...requests].map(([k, v]) => `palisade_http_requests_total{${k}} ${v}`),
      '# HELP palisade_agents Paired agents, by status.',
      '# TYPE palisade_agents gauge',
      ...[...byStatus].map(([k, v]) => `palisade_agents{status="${k}"} ${v}`),
      '# HELP palisade_agents_synced Agents that applied and verified their current host policy.',
      '# TYPE palisade_agents_synced gauge',
      `palisade_agents_synced ${inSync}`,
      '# HELP palisade_policy_waiters Agents connected to this server waiting for their next policy.',
      '# TYPE palisade_policy_waiters gauge',
      `palisade_policy_waiters ${feed.waiting}`,
      '# HELP palisade_policy_version The newest provisioned policy version.',
      '# TYPE palisade_policy_version gauge',
      `palisade_policy_version ${version}`,
    ]
    return reply
      .code(200)
      .header('content-type', 'text/plain; version=0.0.4')
      .send(`${lines.join('\n')}\n`)
  })
}
