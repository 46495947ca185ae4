/**
 * The agent's side of the channel to its policy server.
 *
 * - Policy: a long-poll that returns when this host's policy changes (push within a second);
 *   after any failure the agent keeps enforcing what it has and retries with back-off.
 * - Status: reported on every change and as a heartbeat; carries the applied version and hash
 *   (the server calls the host `synced` when the hash is its current one), health and survey.
 * - Commit-confirm: after applying a policy from the server, the agent must reach the server
 *   within `confirmMs`, or it rolls back to the last confirmed policy and refuses that one.
 * - Events and flow summaries: uploaded in batches from their outboxes in the state dir (see
 *   `Outbox`); the server ignores repeats (uuids).
 */
import type { Backend, NamedSet, Ruleset } from '@palisade/firewall'
import type { Failsafe, HostPolicy } from '@palisade/model'
import type { KnownGood } from './daemon.js'
import type { EnforcementStatus } from './enforcer.js'
import type { ServerConfig } from './server-client.js'
import { replyError, ServerClient } from './server-client.js'
import type { FlowCollectorStatus } from './flows/collector.js'
import type { Outbox } from './outbox.js'
import type { RulesetSurvey } from './survey.js'

export interface ServerLinkOptions {
  readonly config: ServerConfig
  readonly token: string
  readonly events: Outbox
  readonly flows: Outbox
  readonly heartbeatMs: number
  readonly confirmMs: number
  readonly log: (line: Record<string, unknown>) => void
  readonly status: () => {
    enforcement: EnforcementStatus
    survey: RulesetSurvey
    ruleset: Ruleset
    backend: Backend
    /** The host's addresses now: peers on other hosts follow them when they change. */
    interfaces: { name: string; address: string }[] | undefined
    failsafe: Failsafe
    suspended: boolean
    flows: FlowCollectorStatus
  }
  readonly onPolicy: (policy: HostPolicy, hash: string) => void
  readonly onConfirmed: (good: KnownGood) => void
  readonly onRollback: (reason: string) => void
  readonly onChange: () => void
  /** The server unpaired this agent: restore the firewall as asked and forget everything. */
  readonly onUnpair: (firewallRestore: 'default' | 'saved' | 'open' | 'closed') => void
}

const MAX_BATCH = 500
/** Past this size, large sets are sent without their elements (the server is told). */
const MAX_RULESET_BYTES = 2 * 1024 * 1024

/** The ruleset as it is sent, and its text (to tell whether the server already has it). */
function boundedRuleset(rs: Ruleset): { bounded: Ruleset; text: string } {
  const text = JSON.stringify(rs)
  if (text.length <= MAX_RULESET_BYTES) return { bounded: rs, text }
  const trim = (s: NamedSet) => (s.elements.length > 1000 ? { ...s, elements: [] } : s)
  const bounded = {
    tables: rs.tables.map((t) => ({ ...t, sets: t.sets.map(trim) })),
    ipsets: rs.ipsets.map(trim),
    elementsOmitted: true,
  }
  return { bounded, text: JSON.stringify(bounded) }
}

export class ServerLink {
  readonly #o: ServerLinkOptions
  readonly #client: ServerClient
  #stopped = false
  #known: string | undefined
  #rejected: string | undefined
  #applied: KnownGood | undefined
  #confirmed: string | undefined
  #confirm: { good: KnownGood; timer: NodeJS.Timeout } | undefined
  #reportTimer: NodeJS.Timeout | undefined
  #heartbeat: NodeJS.Timeout | undefined
  #poll: AbortController | undefined
  /** The ruleset the server has: sent again only when it changed. */
  #rulesetSent: string | undefined
  /** The addresses the server has: sent again only when they changed. */
  #interfacesSent: string | undefined
  /** Serialised once per ruleset the agent read, not once per report. */
  #ruleset: { of: Ruleset; bounded: Ruleset; text: string } | undefined
  state: { url: string; connected: boolean; lastContactAt?: string; error?: string }

  constructor(o: ServerLinkOptions) {
    this.#o = o
    this.#client = new ServerClient(o.config, `Bearer ${o.token}`)
    this.state = { url: o.config.url, connected: false }
  }

  start(knownHash: string | undefined): void {
    this.#known = knownHash
    this.#confirmed = knownHash
    void this.#pollLoop()
    this.#heartbeat = setInterval(() => void this.#report(), this.#o.heartbeatMs)
    this.reportSoon()
  }

  async stop(): Promise<void> {
    this.#stopped = true
    this.#poll?.abort()
    clearInterval(this.#heartbeat)
    clearTimeout(this.#reportTimer)
    if (this.#confirm) clearTimeout(this.#confirm.timer)
    await this.upload()
    // Best effort: a server that is away simply sees the heartbeats stop.
    await this.#client
      .call('POST', `/agent/v1/agents/${this.#o.config.agentId}/goodbye`, {}, 2000)
      .catch(() => undefined)
  }

  #contact(ok: boolean, error?: string): void {
    const before = JSON.stringify(this.state)
    this.state = {
      url: this.#o.config.url,
      connected: ok,
      ...(ok
        ? { lastContactAt: new Date().toISOString() }
        : {
            ...(this.state.lastContactAt && { lastContactAt: this.state.lastContactAt }),
            ...(error && { error }),
          }),
    }
    if (
      JSON.stringify({ ...this.state, lastContactAt: undefined }) !==
      JSON.stringify({ ...(JSON.parse(before) as object), lastContactAt: undefined })
    )
      this.#o.onChange()
  }

  async #pollLoop(): Promise<void> {
    let backoff = 500
    const id = this.#o.config.agentId
    while (!this.#stopped) {
      try {
        const r = await this.#client.call(
          'GET',
          `/agent/v1/agents/${id}/policy?known=${encodeURIComponent(this.#known ?? '')}&wait=25`,
          undefined,
          40_000,
        )
        if (r.status === 200) {
          this.#contact(true)
          backoff = 500
          const { hash, policy } = r.body as { hash: string; policy: HostPolicy }
          this.#known = hash
          if (hash !== this.#rejected) this.#o.onPolicy(policy, hash)
          continue
        }
        if (r.status === 410) {
          const mode = (r.body as { unpair?: { firewall_restore?: string } }).unpair
            ?.firewall_restore
          this.#o.onUnpair(
            mode === 'saved' || mode === 'open' || mode === 'closed' ? mode : 'default',
          )
          return
        }
        if (r.status === 304) {
          this.#contact(true)
          backoff = 500
          continue
        }
        throw new Error(`the server refused the policy request: ${replyError(r)}`)
      } catch (e) {
        if (this.#stopped) return
        this.#contact(false, (e as Error).message)
        await new Promise((r) => setTimeout(r, backoff))
        backoff = Math.min(30_000, backoff * 2)
      }
    }
  }

  /** The daemon verified `good` in the kernel: report it, and start the confirm deadline. */
  applied(good: KnownGood, _s: EnforcementStatus): void {
    this.#applied = good
    if (
      good.hash === undefined ||
      good.hash === this.#confirmed ||
      this.#confirm?.good.hash === good.hash
    )
      return
    if (this.#confirm) clearTimeout(this.#confirm.timer)
    const timer = setTimeout(() => this.#rollback(good), this.#o.confirmMs)
    this.#confirm = { good, timer }
    this.reportSoon()
  }

  #rollback(good: KnownGood): void {
    if (this.#confirm?.good !== good) return
    this.#confirm = undefined
    this.#rejected = good.hash
    this.#o.onRollback(
      `could not reach the policy server within ${this.#o.confirmMs} ms after applying policy version ${good.policy.version}; rolled back to the last confirmed policy`,
    )
  }

  reportSoon(): void {
    clearTimeout(this.#reportTimer)
    this.#reportTimer = setTimeout(() => void this.#report(), 100)
  }

  async #report(): Promise<void> {
    if (this.#stopped) return
    const s = this.#o.status()
    const a = this.#applied
    if (this.#ruleset?.of !== s.ruleset)
      this.#ruleset = { of: s.ruleset, ...boundedRuleset(s.ruleset) }
    const { bounded, text: rulesetText } = this.#ruleset
    const interfacesText = s.interfaces && JSON.stringify(s.interfaces)
    const body = {
      ...(a?.hash &&
        s.enforcement.applied && {
          applied: { version: a.policy.version, hash: a.hash, mode: s.enforcement.applied.mode },
        }),
      health: {
        health: s.enforcement.health,
        reason: s.enforcement.reason ?? null,
        tampering: s.enforcement.tampering,
        suspended: s.suspended,
        flows: { ...s.flows, dropped: await this.#o.flows.dropped() },
        // What our chains always let through, for the server's explanations.
        failsafe: s.failsafe,
      },
      survey: s.survey,
      backend: s.backend,
      ...(interfacesText !== this.#interfacesSent && { interfaces: s.interfaces }),
      ...(rulesetText !== this.#rulesetSent && { ruleset: bounded }),
    }
    try {
      const r = await this.#client.call(
        'POST',
        `/agent/v1/agents/${this.#o.config.agentId}/status`,
        body,
      )
      if (r.status !== 204)
        throw new Error(`the server refused the status report: ${replyError(r)}`)
      this.#contact(true)
      if (body.ruleset) this.#rulesetSent = rulesetText
      if (body.interfaces) this.#interfacesSent = interfacesText
      const pending = this.#confirm
      if (pending && pending.good === a) {
        clearTimeout(pending.timer)
        this.#confirm = undefined
        this.#confirmed = a.hash
        this.#o.onConfirmed(a)
      }
      await this.upload()
    } catch (e) {
      this.#contact(false, (e as Error).message)
      // While a policy waits for confirmation, keep trying until its deadline.
      if (this.#confirm && !this.#stopped)
        this.#reportTimer = setTimeout(() => void this.#report(), 1000)
    }
  }

  /** Uploads what the outboxes hold; each moves its offset only once the server stored a batch. */
  async upload(): Promise<void> {
    const id = this.#o.config.agentId
    const send = (what: 'events' | 'flows') => async (batch: unknown[]) => {
      const r = await this.#client.call('POST', `/agent/v1/agents/${id}/${what}`, batch)
      if (r.status !== 204) throw new Error(`the server refused ${what}: ${replyError(r)}`)
    }
    try {
      await this.#o.events.upload(send('events'), MAX_BATCH)
      await this.#o.flows.upload(send('flows'), MAX_BATCH)
    } catch (e) {
      this.#contact(false, (e as Error).message)
    }
  }
}
