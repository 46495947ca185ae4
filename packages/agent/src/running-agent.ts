import type { Backend, Desired } from '@palisade/firewall'
import { analyseImpact, compile } from '@palisade/firewall'
import type { Failsafe } from '@palisade/model'
import type { AgentBuild, RestoreMode, StatusReply } from '@palisade/protocol'
import { existsSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import type { AgentConfig } from './agent-config.js'
import { failsafeOf, managementTcpPorts } from './agent-config.js'
import type { AgentStatus } from './agent-status.js'
import { runningStatus } from './agent-status.js'
import type { Clock } from './clock.js'
import type { Candidate, KnownGood } from './commit-confirm.js'
import { CommitConfirm } from './commit-confirm.js'
import type { Dataplane } from './dataplane.js'
import { KernelDataplane } from './dataplane-kernel.js'
import type { EnforcementStatus } from './enforcer.js'
import { Enforcer } from './enforcer.js'
import type { AgentEvent } from './events.js'
import { agentEvent } from './events.js'
import type { ProcessStarter, Runner } from './exec.js'
import { startLocal } from './exec.js'
import { FlowCollector } from './flows/collector.js'
import type { OsRelease } from './host-facts.js'
import type { HostView } from './host-survey.js'
import { HostSurvey } from './host-survey.js'
import { restoreFirewall } from './netfilter/foreign-save.js'
import { Outbox } from './outbox.js'
import type { PolicySource } from './policy-source.js'
import { FilePolicySource, KNOWN_GOOD_ONLY, ServerPolicySource } from './policy-source.js'
import { ServerClient } from './server-client.js'
import type { RefusalKind } from './policy-refusals.js'
import { PolicyRefusals } from './policy-refusals.js'
import type { NameResolver } from './server-addresses.js'
import { ServerAddresses, systemResolver } from './server-addresses.js'
import { ServerLink } from './server-link.js'
import type { LatestJsonWriter, StatePaths } from './state-dir.js'
import { writeJson } from './state-dir.js'
import { StatusReports } from './status-report.js'

export interface RunAgentOptions {
  readonly stateDir: string
  readonly run: Runner
  /** Starts the long-running commands (the change monitor); default: in this namespace. */
  readonly start?: ProcessStarter
  /** Standalone mode: enforce this local policy file and follow its changes. */
  readonly policyFile?: string
  readonly backend?: Backend | 'auto'
  readonly log: (line: Record<string, unknown>) => void
  /** This agent's version: recorded with the state dir's format and reported to the server. */
  readonly version: string
  /** Called once the server unpaired this agent and it cleaned up (the CLI exits then). */
  readonly onUnpaired?: () => void
  /** Resolves the policy server's name for the failsafe (default: DNS, then the system's). */
  readonly resolve?: NameResolver
  /**
   * The agent stopped to be started again (an upgrade, a rollback): start its executable again
   * (the CLI: `restartProcess`). Without it, an agent cannot upgrade itself.
   */
  readonly onRestart?: (why: string) => void
}

export interface RunningAgentOptions extends RunAgentOptions {
  readonly clock: Clock
  readonly paths: StatePaths
  readonly config: AgentConfig
  readonly os: OsRelease
  readonly view: HostView
  readonly statusFile: LatestJsonWriter
  /** The agent's credential, when it is paired with a server. */
  readonly token: string | undefined
  /** Gives the state dir up. */
  readonly release: () => Promise<void>
  /** The kernel (default: the real tools for the chosen backend; unit tests pass a fake). */
  readonly dataplane?: Dataplane
  /** What this agent runs, told to the server in every report (it may order another). */
  readonly build?: AgentBuild
  /** The server answered a report with orders. */
  readonly onOrders?: (reply: StatusReply) => void
  /** A status report reached the server. */
  readonly onReported?: () => void
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
  readonly #serverAddresses: ServerAddresses | undefined
  readonly #survey: HostSurvey
  readonly #events: Outbox
  readonly #flows: Outbox
  readonly #collector: FlowCollector
  readonly #commit: CommitConfirm
  readonly #reports = new StatusReports()
  readonly #refusals: PolicyRefusals
  /** A policy that did not compile: offered again when the failsafe changes. */
  #untaken: { readonly c: Candidate; readonly source: string } | undefined
  readonly #link: ServerLink | undefined
  readonly #source: PolicySource
  readonly #onHup = () => this.#hup()
  #suspended: boolean
  /** The desired state compiled last, and the one the host was last surveyed after. */
  #desired: Desired | undefined
  #surveyedFor: Desired | undefined

  constructor(o: RunningAgentOptions) {
    const { clock, config, paths } = o
    this.#o = o
    this.#startedAt = clock.isoNow()
    this.#suspended = existsSync(paths.suspended)
    const server = o.token !== undefined ? config.server : undefined
    const serverUrl = server && new URL(server.url)
    this.#serverAddresses =
      serverUrl &&
      new ServerAddresses({
        host: serverUrl.hostname,
        port: Number(serverUrl.port || 443),
        resolve: o.resolve ?? systemResolver,
        clock,
        log: o.log,
        onChange: () => this.#failsafeChanged(),
      })
    this.#survey = new HostSurvey(o.view, {
      run: o.run,
      clock,
      log: o.log,
      onChange: () => {
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
    const { backend } = o.view.choice
    this.enforcer = new Enforcer({
      dataplane:
        o.dataplane ?? new KernelDataplane(o.run, backend, o.start ?? startLocal, clock, o.log),
      clock,
      // iptables-legacy and ipsets emit no change events: poll them.
      pollMs: backend === 'nftables' ? null : config.pollMs,
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
            client: new ServerClient(server, `Bearer ${o.token}`),
            url: server.url,
            agentId: server.agentId,
            clock,
            events: this.#events,
            flows: this.#flows,
            heartbeatMs: config.heartbeatMs,
            log: o.log,
            report: () => this.#report(),
            retryReports: () => this.#commit.awaitingConfirmation,
            onPolicy: (r) => this.#take({ policy: r.policy, hash: r.hash }, 'server'),
            onRefused: (reason) => this.#refused('offered', reason),
            onUnchanged: (hash) => this.#unchanged(hash),
            onUnpair: (mode) => this.#unpaired(mode),
            onChange: () => this.#writeStatus(),
            ...(o.onOrders && { onOrders: o.onOrders }),
          })
    this.#source = o.policyFile
      ? new FilePolicySource(
          o.policyFile,
          (c, source) => this.#take(c, source),
          (reason) => this.#refused('offered', reason),
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
    if (!this.#o.policyFile) this.#enforceCurrent()
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

  /**
   * A policy offered by its source becomes current once it compiled (commit-confirm then
   * waits for the kernel and the server); one that does not compile leaves the previous
   * ruleset in place and makes the agent unhealthy until a policy is taken.
   */
  #take(c: Candidate, source: string): void {
    try {
      if (this.#commit.offer(c, source)) {
        this.#untaken = undefined
        this.#refusals.cleared('offered')
        this.#refusals.cleared('enforced')
      }
    } catch (e) {
      // Kept to try again when what it needs changes (the server's name resolved).
      this.#untaken = { c, source }
      this.#refused(
        'offered',
        `policy version ${c.policy.version} from ${source} was not applied, the previous ruleset stays: ${(e as Error).message}`,
      )
    }
    this.#writeStatus()
    this.#link?.reportSoon()
  }

  /** The server's policy is the one enforced after all: a refusal of another one is over. */
  #unchanged(hash: string | undefined): void {
    if (hash === undefined || hash !== this.#commit.current?.hash) return
    this.#untaken = undefined
    if (this.#refusals.cleared('offered')) {
      this.#writeStatus()
      this.#link?.reportSoon()
    }
  }

  #refused(kind: RefusalKind, reason: string): void {
    this.#o.log({ msg: 'policy refused', reason })
    if (this.#refusals.refused(kind, reason)) {
      this.#writeStatus()
      this.#link?.reportSoon()
    }
  }

  /** Enforces the current policy again (suspend, a new failsafe); what cannot compile is refused. */
  #enforceCurrent(): void {
    const c = this.#commit.current
    if (!c) return
    try {
      this.#enforce(c)
      if (this.#refusals.cleared('enforced')) this.#writeStatus()
    } catch (e) {
      this.#refused(
        'enforced',
        `policy version ${c.policy.version} cannot be compiled, the previous ruleset stays: ${(e as Error).message}`,
      )
    }
  }

  /** The failsafe changed (the server's addresses): a policy refused for it may compile now. */
  #failsafeChanged(): void {
    const untaken = this.#untaken
    if (untaken) this.#take(untaken.c, untaken.source)
    else this.#enforceCurrent()
  }

  /** Compiles `c` and hands it to the enforcer (suspended: nothing of ours); throws if it cannot. */
  #enforce(c: Candidate): void {
    const { config } = this.#o
    const p = this.#suspended
      ? {
          ...c.policy,
          enforcementMode: 'idle' as const,
          mode: { ...c.policy.mode, applied: false },
        }
      : c.policy
    this.#desired = compile(p, {
      backend: this.#o.view.choice.backend,
      // Throws while the server's name never resolved: nothing can be compiled then.
      failsafe: failsafeOf(config, this.#serverAddresses?.endpoints ?? []),
      ...(config.nftPriority !== undefined && { priority: config.nftPriority }),
      flowLogGroup: config.flows.group,
    })
    this.enforcer.setDesired(this.#desired, { repair: !this.#suspended })
    this.#configureFlows()
  }

  #enforcement(s: EnforcementStatus): void {
    this.#writeStatus()
    const verified = this.#desired !== undefined && this.enforcer.verified === this.#desired
    // Our own rules changed the host's ruleset: read it again for the server's analysis.
    if (verified && this.#desired !== this.#surveyedFor) {
      this.#surveyedFor = this.#desired
      void this.#survey.resurvey()
    }
    if (verified && !this.#suspended) this.#commit.verified(s.applied?.mode)
    this.#link?.reportSoon()
  }

  /** Flow collection follows the policy; confirmations are watched only if a drop can follow us. */
  #configureFlows(): void {
    const p = this.#commit.current?.policy
    const mode = p?.mode.mode ?? 'exclusive'
    const dropsAfterUs = analyseImpact(this.#survey.ruleset, {
      backend: this.#o.view.choice.backend,
      mode,
    }).some((i) => i.kind === 'override')
    this.#collector.configure(p, !this.#suspended && p?.mode.applied === true, dropsAfterUs)
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
      failsafe: this.#reportedFailsafe(),
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

  /** What the failsafe allows now, for the server's explanations (no server yet: none). */
  #reportedFailsafe(): Failsafe {
    let servers: readonly { address: string; port: number }[] = []
    try {
      servers = this.#serverAddresses?.endpoints ?? []
    } catch {
      // the name never resolved: the failsafe allows no server yet
    }
    return failsafeOf(this.#o.config, servers)
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
    this.#enforceCurrent()
    void this.#source.reload()
  }

  /** The server unpaired this agent: restore the firewall as asked, say goodbye, forget all. */
  #unpaired(mode: RestoreMode): void {
    const o = this.#o
    o.log({ msg: 'unpaired by the server', firewall_restore: mode })
    this.enforcer.stop()
    this.#commit.stop()
    void this.#collector.stop()
    void restoreFirewall(
      o.run,
      o.view.choice.backend,
      mode,
      o.paths.saved,
      managementTcpPorts(o.config),
    )
      .catch(this.#logError('restoring the firewall after unpair failed'))
      .then(() => this.#link?.stop())
      .then(async () => {
        process.off('SIGHUP', this.#onHup)
        await rm(o.paths.dir, { recursive: true, force: true })
        o.onUnpaired?.()
      })
  }
}
