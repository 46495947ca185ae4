import type { Kysely } from 'kysely'
import type { Database } from './db/schema.js'
import type { HostPolicyFeed } from './host-policy/change-feed.js'
import type { HostPolicyRecompute } from './host-policy/recompute.js'
import type { AsyncJobs } from './http.js'

/** What every route of the server is given: the store and the services that share its state. */
export interface AppContext {
  readonly db: Kysely<Database>
  /** Computes and stores host policies after a change (see `recompute`). */
  readonly hostPolicies: HostPolicyRecompute
  /** Agents' long-polls for their host policy. */
  readonly policyFeed: HostPolicyFeed
  readonly jobs: AsyncJobs
  /** Write transactions the store takes at once (see `OpenedDb`). */
  readonly writeLanes: number
  /** Where agents reach this server (for the failsafe rule that keeps that channel open). */
  readonly agentEndpoint: () => { address: string; port: number }
  /** The CA agents pin, as a path on the server (shown in the console's activation command). */
  readonly caCertFile?: string
  /** Where the agent package is (`GET /agent/install.sh`); default: the repository's dist/. */
  readonly agentDir?: string
}
