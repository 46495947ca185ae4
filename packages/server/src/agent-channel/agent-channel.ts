import type { FastifyInstance } from 'fastify'
import { AGENT_PARAM, LONG_POLL_SECONDS, POLICY_STATUS, policyRoute } from '@palisade/protocol'
import type { AppContext } from '../context.js'
import { json, jsonText } from '../http.js'
import { writtenOut } from '../stores/address-sets.js'
import { pendingUnpair } from '../stores/agents.js'
import { registerActivation } from './agent-activation.js'
import { agentAuth } from './agent-auth.js'
import { registerAgentReports } from './agent-reports.js'
import { registerAgentSets } from './agent-sets.js'

/**
 * The agent channel: activation, the host-policy long-poll and its shared sets, and what agents
 * report. Every route
 * but activation names the agent, and the agent's credential must be its own.
 */
export function registerAgentChannel(
  app: FastifyInstance,
  ctx: AppContext,
  activationsPerMinute: number,
): void {
  registerActivation(app, ctx, activationsPerMinute)

  /** Long-poll: answers at once if the agent's host policy differs from `known`, else waits. */
  app.get(policyRoute(AGENT_PARAM), async (req, reply) => {
    const a = await agentAuth(ctx.db, req)
    const q = req.query as { known?: string; wait?: string; sets?: string }
    // Held for 75 to 100 % of the longest hold: agents that all connected at once (a server
    // restarted) come back spread over a quarter of it, not all at the same moment again.
    const longest = LONG_POLL_SECONDS * 1000 * (0.75 + Math.random() / 4)
    const asked = Number(q.wait ?? LONG_POLL_SECONDS)
    const wait = Number.isFinite(asked) && asked >= 0 ? Math.min(asked * 1000, longest) : longest
    if (a.unpair)
      return json(reply, POLICY_STATUS.unpair, { unpair: { firewall_restore: a.unpair } })
    // An agent gone while its poll is held ends the wait. The listener goes once the wait is
    // over: the request closes after every reply, and an abort then (an exception made, an event
    // dispatched) costs a fleet's wake-up a tenth of its time for nothing.
    const abort = new AbortController()
    const onClose = () => abort.abort()
    req.raw.once('close', onClose)
    const got = await ctx.policyFeed
      .waitForChange(a.workloadId, q.known, wait, abort.signal)
      .finally(() => req.raw.off('close', onClose))
    if (!got) {
      // Woken without a policy: the wait ran out, or an unpair here ended it. (An unpair through
      // another server is seen at the next poll.)
      const unpairNow = await pendingUnpair(ctx.db, a.id)
      if (unpairNow)
        return json(reply, POLICY_STATUS.unpair, { unpair: { firewall_restore: unpairNow } })
      return reply.code(POLICY_STATUS.unchanged).send()
    }
    // The stored policy text goes out as it is: a thousand agents woken at once cost no parsing.
    // Agents that do not resolve shared sets (builds before them) get them written out.
    const text = q.sets === 'ref' ? got.text : await writtenOut(ctx.db, a.org, got.text)
    return jsonText(
      reply,
      POLICY_STATUS.policy,
      `{"hash":${JSON.stringify(got.hash)},"policy":${text}}`,
    )
  })

  registerAgentSets(app, ctx)
  registerAgentReports(app, ctx)
}
