import type { Kysely } from 'kysely'
import type { StoreChanges } from '../db/pg-notifications.js'
import type { Database } from '../db/schema.js'
import { HostPolicyFeed } from './change-feed.js'
import { HostPolicyRecompute } from './recompute.js'

/**
 * The host-policy services of one server process: a recompute announcing to its change feed, which
 * hears of other servers' changes from `changes` (PostgreSQL's notifications) when there are any.
 */
export function hostPolicyServices(
  db: Kysely<Database>,
  changes?: StoreChanges,
): {
  readonly hostPolicies: HostPolicyRecompute
  readonly policyFeed: HostPolicyFeed
} {
  const policyFeed = new HostPolicyFeed(db, changes)
  return { hostPolicies: new HostPolicyRecompute(db, policyFeed), policyFeed }
}
