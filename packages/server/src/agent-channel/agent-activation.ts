import type { FastifyInstance } from 'fastify'
import { activateRoute, checkActivateRequest } from '@palisade/protocol'
import { resourceChange } from '../audit.js'
import { now } from '../clock.js'
import type { AppContext } from '../context.js'
import { newUuid, randomSecret, sha256 } from '../crypto.js'
import { invalid, invalidOne } from '../errors.js'
import { workloadHref } from '../hrefs.js'
import { json } from '../http.js'
import { PerMinuteLimit } from '../rate-limit.js'
import { insertAgent } from '../stores/agents.js'
import type { Db } from '../stores/db.js'
import { recordEvent } from '../stores/events.js'
import type { PairingKeyRow, ProfileRow } from '../stores/pairing.js'
import { findPairingKey, profileOfKey, useKey } from '../stores/pairing.js'
import { insertWorkload } from '../stores/workloads.js'
import { accepted } from '../validate.js'
import { isAllowed } from '../workloads/allowed-ranges.js'
import { agentActor } from './agent-auth.js'

/**
 * The pairing key and profile an activation code names, its use counted; throws the 406 of a
 * code that is unknown, expired, used up or of a disabled profile.
 */
async function redeem(tx: Db, code: string): Promise<{ key: PairingKeyRow; profile: ProfileRow }> {
  const key = await findPairingKey(tx, sha256(code))
  if (!key)
    throw invalidOne(
      'invalid_activation_code',
      'this activation code is not valid; generate one from a pairing profile',
    )
  if (key.expires_at !== null && key.expires_at < now())
    throw invalidOne(
      'activation_code_expired',
      `this activation code expired at ${key.expires_at}; generate a new one`,
    )
  const profile = await profileOfKey(tx, key)
  if (profile.enabled !== 1)
    throw invalidOne('pairing_profile_disabled', 'the pairing profile of this code is disabled')
  if (!(await useKey(tx, key)))
    throw invalidOne(
      'activation_code_used_up',
      'this activation code has been used as often as its pairing profile allows',
    )
  return { key, profile }
}

/** The largest activation request: a code, a hostname and up to 256 interfaces. */
const ACTIVATION_BODY_LIMIT = 64 * 1024

/**
 * Activation: a host with a code from a pairing profile becomes a managed workload with an
 * agent, and gets the agent's credential (shown once; only its hash is kept).
 */
export function registerActivation(
  app: FastifyInstance,
  ctx: AppContext,
  activationsPerMinute: number,
): void {
  const { db } = ctx
  const activations = new PerMinuteLimit(activationsPerMinute)

  // The limit is counted before the body is read; an activation is a few hundred bytes.
  app.post(
    activateRoute(),
    {
      bodyLimit: ACTIVATION_BODY_LIMIT,
      onRequest: (req, _reply, done) => {
        try {
          activations.take(req.ip)
          done()
        } catch (e) {
          done(e as Error)
        }
      },
    },
    async (req, reply) => {
      const {
        activation_code: code,
        hostname,
        os_platform: platform,
        interfaces,
      } = accepted(checkActivateRequest(req.body))
      const result = await db.transaction().execute(async (tx) => {
        const { key, profile } = await redeem(tx, code)
        const outside = interfaces.flatMap((i, n) =>
          isAllowed(profile.allowed_ip_ranges, i.address) ? [] : [n],
        )
        if (outside.length > 0)
          throw invalid(
            outside.map((n) => ({
              token: 'address_not_allowed',
              message: `$.interfaces[${n}].address: ${interfaces[n]?.address} is outside the pairing profile's allowed_ip_ranges (${profile.allowed_ip_ranges?.join(', ')}); activate with a profile that allows it`,
            })),
          )
        const org = key.org_id
        const workloadId = newUuid()
        const agentId = newUuid()
        const secret = randomSecret(32)
        const ts = now()
        await insertWorkload(tx, {
          id: workloadId,
          org_id: org,
          name: hostname,
          hostname: hostname,
          managed: 1,
          agent_type: profile.agent_type,
          os_platform: platform,
          enforcement_mode: profile.enforcement_mode,
          visibility_level: profile.visibility_level,
          labels: profile.labels,
          interfaces,
          description: null,
          external_data_set: null,
          external_data_reference: null,
          created_at: ts,
          updated_at: ts,
        })
        await insertAgent(tx, {
          id: agentId,
          org,
          workloadId,
          tokenHash: sha256(secret),
          at: ts,
          profileId: profile.id,
        })
        await recordEvent(tx, org, {
          event_type: 'agent.activate',
          created_by: agentActor({ id: agentId, org, hostname }),
          resource_changes: [
            resourceChange('workload', workloadHref(org, workloadId), 'create', undefined, {
              hostname,
              interfaces,
            }),
          ],
        })
        return { org, agentId, workloadId, token: `${agentId}.${secret}` }
      })
      // Not awaited: the new agent's first policy request waits for its host policy anyway, and
      // activations in a burst share one recompute.
      ctx.hostPolicies.recompute(result.org).catch((e: Error) => req.log.error(e))
      return json(reply, 201, {
        agent_id: result.agentId,
        workload_href: workloadHref(result.org, result.workloadId),
        token: result.token,
        agent_endpoint: ctx.agentEndpoint(),
      })
    },
  )
}
