import type { AgentArch } from './enums.js'

/**
 * The agent channel's routes: ours, not Illumio's private protocol. Every route after activation
 * names the agent, and an agent may use only its own. The server registers these with
 * `AGENT_PARAM` for the agent; an agent fills in its id.
 */
export const AGENT_PREFIX = '/agent/v1'

/** The route parameter the server matches an agent id with. */
export const AGENT_PARAM = ':agent'

/**
 * How long the server holds a policy request that has nothing new (the agent waits longer). An
 * idle agent costs its server one request per hold: 25,000 agents at 55 s are 450 requests a
 * second. Under the 60 s that load balancers and NAT commonly keep an idle connection.
 */
export const LONG_POLL_SECONDS = 55

/** `POST`: pair with an activation code (the only route without an agent credential). */
export const activateRoute = () => `${AGENT_PREFIX}/activate`

/** `GET`: this agent's host policy, held until it differs from the one the agent has. */
export const policyRoute = (agent: string) => `${AGENT_PREFIX}/agents/${agent}/policy`

/** `POST`: the shared address sets this agent's policy names (see address-set-refs.ts). */
export const setsRoute = (agent: string) => `${AGENT_PREFIX}/agents/${agent}/address_sets`

/** `POST`: health, applied version, survey and ruleset; also the heartbeat. */
export const statusRoute = (agent: string) => `${AGENT_PREFIX}/agents/${agent}/status`

/** `GET`: the one-file agent this server was packaged with (no credential: the install script). */
export const agentDownloadRoute = (arch: AgentArch) => `/agent/palisade-agent-linux-${arch}`

/** `POST`: a batch of events. */
export const eventsRoute = (agent: string) => `${AGENT_PREFIX}/agents/${agent}/events`

/** `POST`: a batch of flow summaries. */
export const flowsRoute = (agent: string) => `${AGENT_PREFIX}/agents/${agent}/flows`

/** `POST`: the agent stops (or, when an unpair is pending, leaves for good). */
export const goodbyeRoute = (agent: string) => `${AGENT_PREFIX}/agents/${agent}/goodbye`

/**
 * The policy long-poll: `known` is the hash the agent has, `wait` how long the server may hold;
 * `sets=ref`: the agent resolves shared sets by id (agents before it get every set written out).
 */
export const policyPollPath = (
  agent: string,
  known: string | undefined,
  waitSeconds = LONG_POLL_SECONDS,
) => `${policyRoute(agent)}?known=${encodeURIComponent(known ?? '')}&wait=${waitSeconds}&sets=ref`
