import type { FastifyRequest, onRequestAsyncHookHandler } from 'fastify'
import { sameSecret, sha256 } from '../crypto.js'
import { ApiError, forbidden } from '../errors.js'
import { agentHref } from '../hrefs.js'
import { agentCredential, forgottenAgent, unpairOf } from '../stores/agents.js'
import type { Db } from '../stores/db.js'

/** The agent a request comes from, as its credential names it. */
export interface AgentAuth {
  readonly id: string
  readonly org: number
  readonly workloadId: string
  readonly hostname: string
  /** The firewall restore a pending unpair asked for. */
  readonly unpair: string | undefined
  /** Its workload was deleted by force: nothing of it is left but the unpair to tell it. */
  readonly forgotten?: true
}

/** `Authorization: Bearer <agent id>.<secret>`, as `[agent id, secret]`. */
export function credentialOf(req: FastifyRequest): [string, string] {
  const h = req.headers.authorization ?? ''
  const [id = '', secret = ''] = h.startsWith('Bearer ') ? h.slice(7).split('.') : []
  return [id, secret]
}

export const unauthenticated = () =>
  new ApiError(401, [
    { token: 'agent_authentication_required', message: 'a valid agent credential is required' },
  ])

/** The agent a request's credential names; it may only use its own routes. */
export async function agentAuth(db: Db, req: FastifyRequest): Promise<AgentAuth> {
  const [id, secret] = credentialOf(req)
  const row = await agentCredential(db, id)
  if (!row) return forgotten(db, req, id, secret)
  if (!sameSecret(row.token_hash, sha256(secret))) throw unauthenticated()
  if ((req.params as { agent?: string }).agent !== row.id)
    throw forbidden('an agent may read and write only its own data')
  return {
    id: row.id,
    org: row.org_id,
    workloadId: row.workload_id,
    hostname: row.hostname,
    unpair: unpairOf(row.status),
  }
}

/**
 * An agent whose workload was deleted by force: it may still call, to be told to unpair (its
 * workload is gone: `workloadId` names nothing).
 */
async function forgotten(
  db: Db,
  req: FastifyRequest,
  id: string,
  secret: string,
): Promise<AgentAuth> {
  const t = id ? await forgottenAgent(db, id) : undefined
  if (!t || !sameSecret(t.token_hash, sha256(secret))) throw unauthenticated()
  if ((req.params as { agent?: string }).agent !== t.id)
    throw forbidden('an agent may read and write only its own data')
  return {
    id: t.id,
    org: t.org_id,
    workloadId: '',
    hostname: t.hostname,
    unpair: t.firewall_restore,
    forgotten: true,
  }
}

/** An agent as the audit log names who made a change. */
export const agentActor = (a: Pick<AgentAuth, 'id' | 'org' | 'hostname'>) => ({
  agent: { href: agentHref(a.org, a.id), hostname: a.hostname },
})

declare module 'fastify' {
  interface FastifyRequest {
    /** The agent an agent-channel request comes from, once `authenticatedFirst` checked it. */
    agent?: AgentAuth
  }
}

/** An `onRequest` hook: the agent is authenticated before its body is read or parsed. */
export const authenticatedFirst =
  (db: Db): onRequestAsyncHookHandler =>
  async (req) => {
    req.agent = await agentAuth(db, req)
  }

/**
 * Bodies up to this size are parsed before the credential is checked, so a status report (the
 * heartbeat) is authenticated by its own write; a larger body, or one of unstated length, only
 * after the credential is.
 */
const PARSED_UNAUTHENTICATED_MAX = 64 * 1024

/** An `onRequest` hook: a large body is read only from an agent whose credential is valid. */
export const largeBodyAuthenticatedFirst =
  (db: Db): onRequestAsyncHookHandler =>
  async (req) => {
    const length = Number(req.headers['content-length'] ?? Infinity)
    if (!(length <= PARSED_UNAUTHENTICATED_MAX)) await agentAuth(db, req)
  }

/** The agent `authenticatedFirst` found (the route has that hook). */
export function agentOf(req: FastifyRequest): AgentAuth {
  if (!req.agent) throw unauthenticated()
  return req.agent
}
