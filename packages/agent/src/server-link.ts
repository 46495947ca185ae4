/**
 * The agent's side of the channel to its policy server: transport only. What the messages say
 * and what follows from them is decided by the caller.
 *
 * - Policy: a long-poll that returns when this host's policy changes (push within a second).
 *   Large peer sets come by id; the ones not held are fetched (as deltas from those held where
 *   the server can) and checked against their ids before the policy is offered. Every reply is
 *   checked by the protocol's parser; after a failure or a refused reply the agent keeps
 *   enforcing what it has and asks again with back-off.
 * - Status: reported soon after every change and as a heartbeat; a report that fails is
 *   retried every second while the caller asks for it (a policy waiting for confirmation).
 * - Events and flow summaries: uploaded in batches from their outboxes in the state dir (see
 *   `Outbox`); the server ignores repeats (uuids).
 */
import type { HostPolicy } from '@palisade/model'
import type {
  Goodbye,
  PolicyReply,
  RestoreMode,
  SetEntry,
  SetsRequest,
  StatusReply,
  StatusReport,
} from '@palisade/protocol'
import {
  checkPolicyReply,
  checkSetsReply,
  checkStatusReply,
  checkUnpairReply,
  eventsRoute,
  flowsRoute,
  goodbyeRoute,
  HeldSets,
  LONG_POLL_SECONDS,
  POLICY_STATUS,
  policyPollPath,
  setsRoute,
  STATUS_REPLY,
  statusRoute,
} from '@palisade/protocol'
import type { Checked, Issue } from '@palisade/model'
import type { Clock, Timer } from './clock.js'
import type { Outbox } from './outbox.js'
import type { Reply, ServerClient } from './server-client.js'
import { ReplyTooLargeError, replyError } from './server-client.js'

/** What the link needs of a client: one call at a time, answered with a status and a body. */
export type ChannelClient = Pick<ServerClient, 'call'>

export interface LinkState {
  readonly url: string
  readonly connected: boolean
  readonly lastContactAt?: string
  readonly error?: string
}

export interface ServerLinkOptions {
  readonly client: ChannelClient
  readonly url: string
  readonly agentId: string
  readonly clock: Clock
  readonly events: Pick<Outbox, 'upload'>
  readonly flows: Pick<Outbox, 'upload'>
  readonly heartbeatMs: number
  readonly log: (line: Record<string, unknown>) => void
  /** The report to send now; `delivered` runs once the server stored it. */
  readonly report: () => Promise<{ body: StatusReport; delivered: () => void }>
  /** While this holds, a report that failed is sent again a second later. */
  readonly retryReports: () => boolean
  /** The server has a new policy for this host (checked, its sets resolved). */
  readonly onPolicy: (reply: { readonly hash: string; readonly policy: HostPolicy }) => void
  /** The server's policy reply was refused by the schema, for this reason (it is asked again). */
  readonly onRefused: (reason: string) => void
  /** The server says the policy named `hash` (the one the agent asked with) is still current. */
  readonly onUnchanged: (hash: string | undefined) => void
  /** The server unpaired this agent: restore the firewall as asked and forget everything. */
  readonly onUnpair: (firewallRestore: RestoreMode) => void
  /** The connection state changed. */
  readonly onChange: () => void
  /** The server answered a status report with orders (checked). */
  readonly onOrders?: (reply: StatusReply) => void
  /**
   * A fraction from 0 to 1 (Math.random by default): each back-off waits that share of its
   * bound, so a fleet that lost its server comes back spread out, not all at the same moment
   * (full jitter). Tests fix it.
   */
  readonly random?: () => number
}

/** The most records an upload sends at once (the server takes up to `BATCH_LIMIT`). */
const BATCH = 500
/** Longer than the server holds a long-poll (`LONG_POLL_SECONDS`), with room for a slow answer. */
const POLL_TIMEOUT_MS = (LONG_POLL_SECONDS + 20) * 1000
const GOODBYE_TIMEOUT_MS = 2000
const REPORT_DEBOUNCE_MS = 100
const REPORT_RETRY_MS = 1000
const BACKOFF = { first: 500, max: 30_000 } as const
/**
 * The largest policy reply read. The schema's bounds (4 million peers) fit: a policy at the
 * limit, as the server writes it, is about 85 MB. Anything longer is refused as it streams in,
 * before it is held whole or parsed.
 */
export const MAX_POLICY_REPLY_BYTES = 96 * 1024 * 1024
/** Every other reply is a status code and at most an error message. */
const MAX_REPLY_BYTES = 1024 * 1024

/** A reply the agent refuses, with the first problems found. */
const refusal = (what: string, issues: readonly Issue[]) =>
  new Error(
    `the server's ${what} is malformed, so it is refused: ${issues
      .slice(0, 5)
      .map((i) => `${i.path}: ${i.message}`)
      .join('; ')}${issues.length > 5 ? `; and ${issues.length - 5} more` : ''}`,
  )

export class ServerLink {
  readonly #o: ServerLinkOptions
  #stopped = false
  /** The hash of the policy the agent has: the server answers at once only when it differs. */
  #known: string | undefined
  #reportTimer: Timer | undefined
  #heartbeat: Timer | undefined
  #state: LinkState
  /** The shared sets of the last policy got: what the next one's sets can be deltas from. */
  readonly #held = new HeldSets()

  constructor(o: ServerLinkOptions) {
    this.#o = o
    this.#state = { url: o.url, connected: false }
  }

  get state(): LinkState {
    return this.#state
  }

  start(knownHash: string | undefined): void {
    this.#known = knownHash
    this.#runPollLoop()
    this.#heartbeat = this.#o.clock.setInterval(() => void this.#report(), this.#o.heartbeatMs)
    this.reportSoon()
  }

  async stop(): Promise<void> {
    this.#stopped = true
    this.#heartbeat?.cancel()
    this.#reportTimer?.cancel()
    await this.upload()
    // Best effort: a server that is away simply sees the heartbeats stop.
    await this.#o.client
      .call(
        'POST',
        goodbyeRoute(this.#o.agentId),
        {} satisfies Goodbye,
        GOODBYE_TIMEOUT_MS,
        MAX_REPLY_BYTES,
      )
      .catch(() => undefined)
  }

  #contact(ok: boolean, error?: string): void {
    const before = this.#state
    this.#state = {
      url: this.#o.url,
      connected: ok,
      ...(ok
        ? { lastContactAt: this.#o.clock.isoNow() }
        : {
            ...(before.lastContactAt && { lastContactAt: before.lastContactAt }),
            ...(error && { error }),
          }),
    }
    if (before.connected !== ok || before.error !== this.#state.error) this.#o.onChange()
  }

  /** The poll loop, started again (after a pause) should a fault escape it. */
  #runPollLoop(): void {
    this.#pollLoop().catch((e: Error) => {
      this.#o.log({ msg: 'the policy loop failed; it starts again', error: e.message })
      if (!this.#stopped)
        this.#o.clock.setTimeout(() => this.#runPollLoop(), BACKOFF.first, { background: true })
    })
  }

  async #pollLoop(): Promise<void> {
    let backoff: number = BACKOFF.first
    let changedAgain = 0
    const id = this.#o.agentId
    while (!this.#stopped) {
      try {
        const r = await this.#o.client.call(
          'GET',
          policyPollPath(id, this.#known),
          undefined,
          POLL_TIMEOUT_MS,
          MAX_POLICY_REPLY_BYTES,
        )
        if (r.status === POLICY_STATUS.unpair) {
          const reply = this.#checked('unpair reply', checkUnpairReply(r.body))
          this.#o.onUnpair(reply.unpair.firewall_restore)
          return
        }
        if (r.status !== POLICY_STATUS.policy && r.status !== POLICY_STATUS.unchanged)
          throw new Error(`the server refused the policy request: ${replyError(r)}`)
        const checked = r.status === POLICY_STATUS.policy ? checkPolicyReply(r.body) : undefined
        if (checked && !checked.ok) {
          // The agent keeps what it enforces and says why; a fixed policy replaces it.
          const refused = this.#refused('policy reply', checked.issues)
          this.#o.onRefused(refused.message)
          throw refused
        }
        const reply = checked?.value
        const policy = reply && (await this.#resolved(reply))
        this.#contact(true)
        if (reply && !policy) {
          // Its sets changed again: ask at once, then, should that keep happening, with back-off.
          if (changedAgain++ > 0) await this.#o.clock.sleep(this.#jittered(backoff))
          backoff = Math.min(BACKOFF.max, backoff * 2)
          continue
        }
        changedAgain = 0
        backoff = BACKOFF.first
        if (reply && policy) {
          this.#known = reply.hash
          this.#o.onPolicy({ hash: reply.hash, policy })
        } else this.#o.onUnchanged(this.#known)
      } catch (e) {
        if (this.#stopped) return
        if (e instanceof ReplyTooLargeError) this.#o.onRefused(e.message)
        this.#contact(false, (e as Error).message)
        await this.#o.clock.sleep(this.#jittered(backoff))
        backoff = Math.min(BACKOFF.max, backoff * 2)
      }
    }
  }

  #jittered(bound: number): number {
    return Math.round((this.#o.random ?? Math.random)() * bound)
  }

  /**
   * The policy with its sets written out, fetching those not held; undefined when the policy
   * changed again meanwhile (the server says a set is gone), and the next poll gets the new one.
   * A set that does not match its id is refused like a malformed reply.
   */
  async #resolved(reply: PolicyReply): Promise<HostPolicy | undefined> {
    const want = this.#held.wanted(reply.policy)
    let got: readonly SetEntry[] = []
    if (want.length > 0) {
      const r = await this.#o.client.call(
        'POST',
        setsRoute(this.#o.agentId),
        { want } satisfies SetsRequest,
        POLL_TIMEOUT_MS,
        MAX_POLICY_REPLY_BYTES,
      )
      if (r.status !== 200) throw new Error(`the server refused the sets request: ${replyError(r)}`)
      const sets = this.#checked('sets reply', checkSetsReply(r.body))
      if (sets.gone.length > 0) {
        this.#o.log({ msg: 'the policy changed while its sets were fetched; asking again' })
        return undefined
      }
      got = sets.sets
    }
    try {
      return this.#held.resolve(reply.policy, got)
    } catch (e) {
      const refused = new Error(`the server's sets are refused: ${(e as Error).message}`)
      this.#o.onRefused(refused.message)
      throw refused
    }
  }

  #checked<T>(what: string, r: Checked<T>): T {
    if (r.ok) return r.value
    throw this.#refused(what, r.issues)
  }

  #refused(what: string, issues: readonly Issue[]): Error {
    this.#o.log({ msg: `${what} refused`, issues: issues.slice(0, 20) })
    return refusal(what, issues)
  }

  reportSoon(): void {
    this.#reportTimer?.cancel()
    this.#reportTimer = this.#o.clock.setTimeout(() => void this.#report(), REPORT_DEBOUNCE_MS)
  }

  async #report(): Promise<void> {
    if (this.#stopped) return
    const built = await this.#o.report().catch((e: Error) => {
      this.#o.log({ msg: 'cannot build the status report', error: e.message })
    })
    if (!built) return
    const { body, delivered } = built
    try {
      const r = await this.#o.client.call(
        'POST',
        statusRoute(this.#o.agentId),
        body,
        undefined,
        MAX_REPLY_BYTES,
      )
      if (r.status !== STATUS_REPLY.stored && r.status !== STATUS_REPLY.orders)
        throw new Error(`the server refused the status report: ${replyError(r)}`)
      this.#contact(true)
      delivered()
      if (r.status === STATUS_REPLY.orders) {
        // Stored all the same: orders that fail the schema are refused and logged, no more.
        const orders = checkStatusReply(r.body)
        if (orders.ok) this.#o.onOrders?.(orders.value)
        else this.#refused('status reply', orders.issues)
      }
      await this.upload()
    } catch (e) {
      this.#contact(false, (e as Error).message)
      if (this.#o.retryReports() && !this.#stopped) {
        this.#reportTimer?.cancel()
        this.#reportTimer = this.#o.clock.setTimeout(() => void this.#report(), REPORT_RETRY_MS)
      }
    }
  }

  /** Uploads what the outboxes hold; each moves its offset only once the server stored a batch. */
  async upload(): Promise<void> {
    const id = this.#o.agentId
    const send = (what: 'events' | 'flows', path: string) => async (batch: unknown[]) => {
      const r: Reply = await this.#o.client.call('POST', path, batch, undefined, MAX_REPLY_BYTES)
      if (r.status !== 204) throw new Error(`the server refused ${what}: ${replyError(r)}`)
    }
    try {
      await this.#o.events.upload(send('events', eventsRoute(id)), BATCH)
      await this.#o.flows.upload(send('flows', flowsRoute(id)), BATCH)
    } catch (e) {
      this.#contact(false, (e as Error).message)
    }
  }
}
