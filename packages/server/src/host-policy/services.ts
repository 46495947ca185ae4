import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { HostPolicyFeed } from './change-feed.js'
import { HostPolicyRecompute } from './recompute.js'

/** The host-policy services of one server process: a recompute announcing to its change feed. */
export function hostPolicyServices(db: Kysely<Database>): {
  readonly hostPolicies: HostPolicyRecompute
  readonly policyFeed: HostPolicyFeed
} {
  const policyFeed = new HostPolicyFeed(db)
  return { hostPolicies: new HostPolicyRecompute(db, policyFeed), policyFeed }
}
