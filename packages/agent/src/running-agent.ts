import type { Backend, Desired } from '@palisade/firewall'
import {
  canCountInKernel,
  countsInKernel,
  dropsAfterUs,
  foreignSetsCountedLabel,
} from '@palisade/firewall'
import type { HostPolicy } from '@palisade/model'
import type { RestoreMode } from '@palisade/protocol'
import { existsSync } from 'node:fs'
import { managementTcpPorts } from './agent-config.js'
import type { AgentStatus } from './agent-status.js'
import { runningStatus } from './agent-status.js'
import type { Candidate, KnownGood } from './commit-confirm.js'
import { CommitConfirm } from './commit-confirm.js'
import { KernelDataplane } from './dataplane-kernel.js'
import type { EnforcementStatus } from './enforcer.js'
import { Enforcer } from './enforcer.js'
import type { AgentEvent } from './events.js'
import { agentEvent } from './events.js'
import { startLocal } from './exec.js'
import { FlowCollector } from './flows/collector.js'
import { HostSurvey } from './host-survey.js'
import { Outbox } from './outbox.js'
import { compileForHost, failsafeNow } from './policy-compile.js'
import { PolicyIntake } from './policy-intake.js'
import { PolicyRefusals } from './policy-refusals.js'
import type { PolicySource } from './policy-source.js'
import { FilePolicySource, KNOWN_GOOD_ONLY, ServerPolicySource } from './policy-source.js'
import type { RunningAgentOptions } from './running-agent-options.js'
import { ClusterAddresses, ServerAddresses, systemResolver } from './server-addresses.js'
import { FailoverClient, serverEndpoints, serverUrls } from './server-failover.js'
import { ServerLink } from './server-link.js'
import { writeJson } from './state-dir.js'
import { StatusReports } from './status-report.js'
import { cleanUpAfterUnpair } from './unpair-cleanup.js'

/**
 * How often iptables-legacy's filter tables are looked at: through the digest (a request to a
 * perl process kept running, microseconds), so a change waits at most this long to be seen.
 */
const LEGACY_LOOK_MS = 25

/**
 * How often the enforcer looks for changes that send no event on `backend` (`lookMs`), and
 * how many of those looks make one that takes what costs a tool (see KernelDataplane), for
 * the configured `pollMs`.
 */
export function lookPacing(backend: Backend, pollMs: number) {
  const lookMs = backend === 'iptables-legacy' ? Math.min(LEGACY_LOOK_MS, pollMs) : pollMs
  return { lookMs, fullLookEvery: Math.max(1, Math.round(pollMs / lookMs)) }
}

/**
 * The running agent: wires the owners together. The host survey says what the host holds; the
 * policy source offers policies; commit-confirm decides which one is enforced; the enforcer
 * keeps the kernel equal to it; the server link carries reports and uploads.
 */
export class RunningAgent {
  readonly enforcer: Enforcer
  readonly #o: RunningAgentOptions
  readonly #startedAt: string
  /** The policy server's addresses, when paired: the failsafe allows each. */
  readonly #serverAddresses: ClusterAddresses | undefined
  readonly #survey: HostSurvey
  readonly #events: Outbox
  readonly #flows: Outbox
  readonly #collector: FlowCollector
  readonly #commit: CommitConfirm
  readonly #reports = new StatusReports()
  readonly #refusals: PolicyRefusals
  readonly #intake: PolicyIntake
  readonly #link: ServerLink | undefined
  readonly #source: PolicySource
  readonly #onHup = () => this.#hup()
  #reloading: Promise<void> = Promise.resolve()
  #suspended: boolean
  /** The desired state compiled last, and the one the host was last surveyed after. */
  #desired: Desired | undefined
  /** The policy `#desired` was compiled from (the candidate, until the commit takes it). */
  #desiredFrom: HostPolicy | undefined
  /**
   * Whether the desired state was compiled to count allowed connections in the kernel;
   * undefined where its policy cannot count there (no survey can change that compile).
   */
  #countsInKernel: boolean | undefined
  #surveyedFor: Desired | undefined

  constructor(o: RunningAgentOptions) {
    const { clock, config, paths } = o
    this.#o = o
    this.#startedAt = clock.isoNow()
    this.#suspended = existsSync(paths.suspended)
    const server = o.token !== undefined ? config.server : undefined
    this.#serverAddresses =
      server &&
      new ClusterAddresses(
        serverEndpoints(server).map(
          ({ address, port }) =>
            new ServerAddresses({
              host: address,
              port,
              resolve: o.resolve ?? systemResolver,
              clock,
              log: o.log,
              onChange: () => this.#intake.failsafeChanged(),
            }),
        ),
      )
    this.#survey = new HostSurvey(o.view, {
      run: o.run,
      clock,
      log: o.log,
      onChange: () => {
        // What the host holds can turn counting in the kernel on or off (#kernelCounting).
        if (
          this.#desired &&
          this.#desiredFrom &&
          this.#kernelCounting(this.#desiredFrom, this.#desired) !== this.#countsInKernel
        )
          this.#intake.enforceCurrent()
        this.#configureFlows()
        this.#link?.reportSoon()
      },
    })
    this.#events = new Outbox(paths.events, paths.eventsOffset)
    this.#refusals = new PolicyRefusals({
      clock,
      onEvent: (e) => {
        o.log({ msg: 'event', ...e })
        this.#record(e)
      },
    })
    this.#flows = new Outbox(paths.flows, paths.flowsOffset, { maxBytes: config.flows.bufferBytes })
    this.#collector = new FlowCollector({
      config: config.flows,
      outbox: this.#flows,
      log: o.log,
      run: o.run,
      onFlushed: () => {
        this.#writeStatus()
        void this.#link?.upload()
      },
    })
    this.#commit = new CommitConfirm({
      clock,
      ...(server && { confirmMs: config.confirmMs }),
      enforce: (c) => this.#enforce(c),
      save: (good) =>
        void writeJson(paths.policy, good).catch(
          this.#logError('cannot save the known-good policy'),
        ),
      awaiting: () => this.#link?.reportSoon(),
      rolledBack: (reason) => {
        o.log({ msg: 'rolled back', reason })
        this.#record(
          agentEvent(clock, 'agent.firewall_apply_failed', 'err', { reason, rolled_back: true }),
        )
      },
    })
    this.#intake = new PolicyIntake({
      commit: this.#commit,
      refusals: this.#refusals,
      enforce: (c) => this.#enforce(c),
      log: o.log,
      changed: (report) => {
        this.#writeStatus()
        if (report) this.#link?.reportSoon()
      },
    })
    const { backend } = o.view.choice
    const { lookMs, fullLookEvery } = lookPacing(backend, config.pollMs)
    this.enforcer = new Enforcer({
      dataplane:
        o.dataplane ??
        new KernelDataplane(o.run, backend, o.start ?? startLocal, clock, {
          log: o.log,
          beforeCountsLost: () => this.#collector.readCounts(),
          fullLookEvery,
        }),
      // Rules that log do so at once: their reader listens first. What the rules being left
      // counted is read while they still tell which rule counted it.
      beforeReconcile: async (desired) => {
        await this.#collector.logReaderReady()
        if (desired) await this.#collector.beforeChange(desired)
      },
      clock,
      // iptables-legacy and ipsets emit no change events: poll them.
      pollMs: backend === 'nftables' ? null : config.pollMs,
      lookMs,
      backstopMs: config.backstopMs,
      fight: config.fight,
      watchEvents: backend !== 'iptables-legacy',
      onEvent: (e) => {
        o.log({ msg: 'event', ...e })
        this.#record(e)
      },
      onStatus: (s) => this.#enforcement(s),
    })
    this.#link =
      server === undefined || o.token === undefined
        ? undefined
        : new ServerLink({
            client: new FailoverClient({
              urls: serverUrls(server),
              caCertFile: server.caCertFile,
              authorization: `Bearer ${o.token}`,
              log: o.log,
              // where the failsafe lets it through, not where another lookup might point
              resolve: (name) => Promise.resolve(this.#serverAddresses?.addressesOf(name) ?? []),
            }),
            url: server.url,
            agentId: server.agentId,
            clock,
            events: this.#events,
            flows: this.#flows,
            heartbeatMs: config.heartbeatMs,
            log: o.log,
            report: () => this.#report(),
            retryReports: () => this.#commit.awaitingConfirmation,
            onPolicy: (r) => this.#intake.take({ policy: r.policy, hash: r.hash }, 'server'),
            onRefused: (reason) => this.#intake.refused('offered', reason),
            onUnchanged: (hash) => this.#intake.unchanged(hash),
            onUnpair: (mode) => this.#unpaired(mode),
            onChange: () => this.#writeStatus(),
            ...(o.onOrders && { onOrders: o.onOrders }),
          })
    this.#source = o.policyFile
      ? new FilePolicySource(
          o.policyFile,
          (c, source) => this.#intake.take(c, source),
          (reason) => this.#intake.refused('offered', reason),
        )
      : this.#link
        ? new ServerPolicySource(this.#link)
        : KNOWN_GOOD_ONLY
  }

  /** Starts enforcing `known` (if any) and following the policy source; `started` says so. */
  async start(known: KnownGood | undefined, started: () => void): Promise<void> {
    // The failsafe must know the server's addresses before anything is compiled.
    await this.#serverAddresses?.start()
    this.#commit.restore(known)
    this.enforcer.start(known?.appliedMode)
    this.#writeStatus()
    started()
    // A policy file replaces the known-good copy at once; otherwise it is enforced until the
    // server is reached.
    if (!this.#o.policyFile) this.#intake.enforceCurrent()
    await this.#source.start(known?.hash)
    process.on('SIGHUP', this.#onHup)
    // Foreign firewalls change without telling us: look again now and then.
    this.#survey.repeat(this.#o.config.surveyMs)
  }

  async stop(): Promise<void> {
    process.off('SIGHUP', this.#onHup)
    this.#serverAddresses?.stop()
    this.#survey.stop()
    this.enforcer.stop()
    this.#commit.stop()
    await this.#collector.stop()
    await this.#source.stop()
    this.#writeStatus('stopped')
    await this.#o.statusFile.flush()
    await this.#o.release()
  }

  #logError(what: string): (e: Error) => void {
    return (e) => this.#o.log({ msg: what, error: e.message })
  }

  #record(e: AgentEvent): void {
    this.#events.append([e]).then(() => this.#link?.upload(), this.#logError('cannot record event'))
  }

  /** Compiles `c` and hands it to the enforcer (suspended: nothing of ours); throws if it cannot. */
  #enforce(c: Candidate): void {
    const compileWith = (flowCounting: boolean) =>
      compileForHost(c.policy, {
        backend: this.#o.view.choice.backend,
        config: this.#o.config,
        servers: this.#serverAddresses,
        suspended: this.#suspended,
        flowCounting,
      })
    // Counting rules decide nothing, so either compile answers whether a drop can follow ours.
    let desired = compileWith(this.#countsInKernel ?? false)
    const counting = this.#kernelCounting(c.policy, desired)
    if ((counting ?? false) !== (this.#countsInKernel ?? false))
      desired = compileWith(counting ?? false)
    this.#desired = desired
    this.#desiredFrom = c.policy
    this.#countsInKernel = counting
    // Readers first: the rules about to go in log (or count) at once.
    this.#configureFlows()
    this.enforcer.setDesired(this.#desired, { repair: !this.#suspended })
  }

  #enforcement(s: EnforcementStatus): void {
    const desired = this.#desired
    const verified = desired !== undefined && this.enforcer.verified === desired
    if (verified) this.#collector.countersApplied(countsInKernel(desired) ? desired : undefined)
    this.#writeStatus()
    // Our own rules changed the host's ruleset: read it again for the server's analysis.
    if (verified && desired !== this.#surveyedFor) {
      this.#surveyedFor = desired
      void this.#survey.resurvey()
    }
    if (verified && !this.#suspended) this.#commit.verified(s.applied?.mode)
    this.#link?.reportSoon()
  }

  /**
   * Whether `desired`, compiled from `policy`, is to count allowed connections in the kernel:
   * only where nothing after ours can drop them and nothing foreign marks them as counted;
   * undefined where the policy or the host cannot count there whatever a survey shows.
   */
  #kernelCounting(policy: HostPolicy, desired: Desired): boolean | undefined {
    if (!canCountInKernel(policy) || this.#o.view.countLabelName !== undefined) return undefined
    const host = this.#survey.ruleset
    return !dropsAfterUs(host, desired) && !foreignSetsCountedLabel(host)
  }

  /**
   * Flow collection follows the policy compiled last; confirmations are watched only if a drop
   * can follow us.
   */
  #configureFlows(): void {
    const p = this.#desiredFrom
    const counting = this.#desired !== undefined && countsInKernel(this.#desired)
    this.#collector.configure(
      p,
      !this.#suspended && p?.mode.applied === true,
      this.#desired !== undefined && dropsAfterUs(this.#survey.ruleset, this.#desired),
      counting,
    )
  }

  async #report() {
    const applied = this.#commit.applied
    const { body, sent } = this.#reports.build({
      applied,
      enforcement: this.#refusals.health(this.enforcer.status),
      survey: this.#survey.survey,
      ruleset: this.#survey.ruleset,
      backend: this.#o.view.choice.backend,
      interfaces: this.#survey.interfaces,
      failsafe: failsafeNow(this.#o.config, this.#serverAddresses),
      suspended: this.#suspended,
      flows: this.#collector.status,
      flowsDropped: await this.#flows.dropped(),
    })
    return {
      body: this.#o.build ? { ...body, build: this.#o.build } : body,
      delivered: () => {
        this.#o.onReported?.()
        sent()
        this.#commit.reached(applied, this.enforcer.status.applied?.mode)
      },
    }
  }

  #writeStatus(state: AgentStatus['state'] = 'running'): void {
    this.#o.statusFile.write(
      runningStatus({
        state,
        startedAt: this.#startedAt,
        now: this.#o.clock.isoNow(),
        choice: this.#o.view.choice,
        os: this.#o.os.prettyName,
        survey: this.#survey.survey,
        policy: this.#commit.current?.policy,
        source: this.#commit.source,
        server: this.#link?.state,
        suspended: this.#suspended,
        enforcement: this.#refusals.health(this.enforcer.status),
        flows: this.#collector.status,
      }),
    )
  }

  /** `palisade agent suspend|unsuspend` wrote or removed the flag and sent SIGHUP. */
  #hup(): void {
    const now = existsSync(this.#o.paths.suspended)
    if (now !== this.#suspended) {
      this.#suspended = now
      this.#record(agentEvent(this.#o.clock, now ? 'agent.suspend' : 'agent.unsuspend', 'info', {}))
    }
    this.#intake.enforceCurrent()
    this.#reloading = this.#source.reload()
  }

  /** The policy source's reading that the last SIGHUP started (it never rejects). */
  get reloaded(): Promise<void> {
    return this.#reloading
  }

  /** The server unpaired this agent: restore the firewall as asked, say goodbye, forget all. */
  #unpaired(mode: RestoreMode): void {
    const o = this.#o
    o.log({ msg: 'unpaired by the server', firewall_restore: mode })
    this.enforcer.stop()
    this.#commit.stop()
    // The last read of the counting sets ends before the cleanup destroys them.
    void this.#collector
      .stop()
      .then(() =>
        cleanUpAfterUnpair({
          run: o.run,
          backend: o.view.choice.backend,
          mode,
          dir: o.paths.dir,
          saved: o.paths.saved,
          managementTcpPorts: managementTcpPorts(o.config),
          log: o.log,
          goodbye: () => this.#link?.stop(),
          leaving: () => process.off('SIGHUP', this.#onHup),
        }),
      )
      .then(() => o.onUnpaired?.())
  }
}
