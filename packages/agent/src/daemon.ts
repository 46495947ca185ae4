import type { Backend, Desired, Ruleset } from '@palisade/firewall'
import { analyseImpact, BACKENDS, compile } from '@palisade/firewall'
import type { Failsafe, HostPolicy, ServicePort } from '@palisade/model'
import { hostPolicyFromLocalFile } from '@palisade/model'
import { existsSync, unwatchFile, watchFile } from 'node:fs'
import { readFile, rm } from 'node:fs/promises'
import type { BackendChoice } from './detect.js'
import { chooseBackend, countRules } from './detect.js'
import type { EnforcementStatus } from './enforcer.js'
import { Enforcer, event } from './enforcer.js'
import type { AgentEvent } from './events.js'
import type { FlowCollectorStatus, FlowConfig } from './flows/collector.js'
import { DEFAULT_FLOW_CONFIG, FlowCollector } from './flows/collector.js'
import { Outbox } from './outbox.js'
import type { Runner } from './exec.js'
import { activeServices, installedTools, readOsRelease } from './host-facts.js'
import { restoreFirewall, saveForeignRuleset } from './netfilter/foreign-save.js'
import { readHost } from './netfilter/read-host.js'
import type { ServerConfig } from './server-client.js'
import { ServerLink } from './server-link.js'
import type { StatePaths } from './state-dir.js'
import {
  claimStateDir,
  ensureStateDir,
  LatestJsonWriter,
  readJson,
  writeJson,
} from './state-dir.js'
import type { RulesetSurvey } from './survey.js'
import { surveyRuleset } from './survey.js'
import { hostInterfaces } from './host-facts.js'

/** `config.json` in the state dir. */
export interface AgentConfig {
  readonly backend: Backend | 'auto'
  /** Inbound ports always allowed, whatever the policy (default TCP 22). */
  readonly managementPorts: readonly ServicePort[]
  readonly pollMs: number
  readonly backstopMs: number
  /** Repairs this close together count as another process fighting us (back-off, one condition). */
  readonly fight: { readonly windowMs: number; readonly threshold: number }
  /** nftables base-chain priority override (must be unique on the hook). */
  readonly nftPriority?: number
  /** Set by `palisade agent activate`: the policy server this agent is paired with. */
  readonly server?: ServerConfig
  /** How often the agent reports its status to the server when nothing changes. */
  readonly heartbeatMs: number
  /** After applying a policy from the server, the agent must reach it within this, or roll back. */
  readonly confirmMs: number
  readonly flows: FlowConfig
  /** How often the whole host ruleset is read again for the survey (default 60 s). */
  readonly surveyMs: number
}

export const DEFAULT_CONFIG: AgentConfig = {
  backend: 'auto',
  managementPorts: [{ proto: 6, port: 22 }],
  pollMs: 1000,
  backstopMs: 30_000,
  fight: { windowMs: 10_000, threshold: 3 },
  heartbeatMs: 60_000,
  confirmMs: 20_000,
  flows: DEFAULT_FLOW_CONFIG,
  surveyMs: 60_000,
}

/** What `palisade agent status` shows; the daemon rewrites it on every change. */
export interface AgentStatus {
  readonly pid: number
  readonly state: 'running' | 'stopped'
  readonly startedAt: string
  readonly updatedAt: string
  readonly backend: Backend | 'auto'
  readonly backendReason: string
  readonly warnings: readonly string[]
  readonly os: string
  readonly survey: RulesetSurvey
  readonly policy?: {
    readonly source: string
    readonly version: number
    readonly enforcementMode: string
    readonly mode: string
  }
  readonly server?: {
    readonly url: string
    readonly connected: boolean
    readonly lastContactAt?: string
    readonly error?: string
  }
  readonly suspended: boolean
  readonly enforcement: EnforcementStatus
  readonly flows?: FlowCollectorStatus
}

/** The last policy we applied and verified: enforced again after a restart without a server. */
export interface KnownGood {
  readonly policy: HostPolicy
  readonly hash?: string
  readonly appliedMode?: string
}

export interface RunAgentOptions {
  readonly stateDir: string
  readonly run: Runner
  /** Standalone mode: enforce this local policy file and follow its changes. */
  readonly policyFile?: string
  readonly backend?: Backend | 'auto'
  readonly log: (line: Record<string, unknown>) => void
  /** Called once the server unpaired this agent and it cleaned up (the CLI exits then). */
  readonly onUnpaired?: () => void
}

interface Detected {
  readonly choice: BackendChoice
  readonly survey: RulesetSurvey
  readonly ruleset: Ruleset
}

/** Reads the host, chooses a backend and surveys the firewalls found. */
async function detectHost(
  run: Runner,
  requested: Backend | 'auto',
  os: Awaited<ReturnType<typeof readOsRelease>>,
): Promise<Detected> {
  const host = await readHost(run)
  const choice = chooseBackend(
    { ...countRules(host.ruleset), os, tools: await installedTools() },
    requested,
  )
  const warnings = [...choice.warnings]
  if (host.mixedBackends && !warnings.some((w) => w.includes('mixes')))
    warnings.push('this host mixes iptables-legacy and nf_tables rules')
  if (host.missingTools.length > 0)
    warnings.push(`not installed, so not surveyed: ${host.missingTools.join(', ')}`)
  return {
    choice: { ...choice, warnings },
    survey: surveyRuleset(host.ruleset, await activeServices(run)),
    ruleset: host.ruleset,
  }
}

async function loadPolicyFile(path: string): Promise<HostPolicy> {
  const text = await readFile(path, 'utf8')
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (e) {
    throw new Error(`${path} is not valid JSON: ${(e as Error).message}`, { cause: e })
  }
  return hostPolicyFromLocalFile(doc, 'local')
}

/**
 * The agent daemon: chooses a backend, surveys the host, saves the foreign firewall before the
 * first takeover, and enforces policy from a local file or from its policy server (falling
 * back to the last known-good copy), keeping `status.json` and the event log current.
 * Returns a function that stops it; our rules stay in the kernel, so the host stays protected.
 */
export async function runAgent(
  o: RunAgentOptions,
): Promise<{ stop: () => Promise<void>; enforcer: Enforcer; paths: StatePaths }> {
  const paths = await ensureStateDir(o.stateDir)
  const release = await claimStateDir(paths)
  const file = await readJson<Partial<AgentConfig>>(paths.config)
  const config: AgentConfig = {
    ...DEFAULT_CONFIG,
    ...file,
    flows: { ...DEFAULT_FLOW_CONFIG, ...file?.flows },
  }
  if (!existsSync(paths.config)) await writeJson(paths.config, config)
  const requested = o.backend ?? config.backend
  if (requested !== 'auto' && !BACKENDS.includes(requested))
    throw new Error(`unknown backend ${String(requested)}; use auto, ${BACKENDS.join(', ')}`)

  const os = await readOsRelease()
  const statusFile = new LatestJsonWriter(paths.status, (e) =>
    o.log({ msg: 'cannot write status', error: e.message }),
  )
  const logError = (what: string) => (e: Error) => o.log({ msg: what, error: e.message })
  // Until the host can be read and a backend chosen, report why, and try again with back-off:
  // an agent that cannot enforce must say so, not crash-loop.
  let detected: Detected | undefined
  for (let attempt = 1; !detected; attempt++) {
    try {
      detected = await detectHost(o.run, requested, os)
    } catch (e) {
      const reason = `cannot start enforcing: ${(e as Error).message}`
      o.log({ msg: 'agent unhealthy', reason, attempt })
      statusFile.write({
        pid: process.pid,
        state: 'running',
        startedAt: new Date().toISOString(),
        updatedAt: new Date().toISOString(),
        backend: requested,
        backendReason: 'not chosen yet',
        warnings: [],
        os: os.prettyName,
        survey: surveyRuleset({ tables: [], ipsets: [] }),
        suspended: false,
        enforcement: { health: 'unhealthy', reason, tampering: { condition: 'none', repairs: 0 } },
      } satisfies AgentStatus)
      await new Promise((r) => setTimeout(r, Math.min(30_000, 500 * 2 ** Math.min(attempt, 6))))
    }
  }
  const { choice } = detected
  let { survey, ruleset } = detected
  const readInterfaces = () =>
    hostInterfaces(o.run).catch((e: Error) => {
      o.log({ msg: 'cannot read the host addresses', error: e.message })
      return undefined
    })
  let interfaces = await readInterfaces()
  /**
   * Re-reads every firewall on the host: the survey and the ruleset the server analyses. A call
   * during a read asks for one more read after it, so the last change is never missed.
   */
  let surveying = false
  let surveyAgain = false
  const resurvey = async (): Promise<void> => {
    if (surveying) {
      surveyAgain = true
      return
    }
    surveying = true
    try {
      do {
        surveyAgain = false
        try {
          const host = await readHost(o.run)
          survey = surveyRuleset(host.ruleset, await activeServices(o.run))
          ruleset = host.ruleset
          interfaces = (await readInterfaces()) ?? interfaces
          configureFlows()
          link?.reportSoon()
        } catch (e) {
          o.log({
            msg: 'cannot read the host firewall for the survey',
            error: (e as Error).message,
          })
        }
      } while (surveyAgain)
    } finally {
      surveying = false
    }
  }
  let surveyedFor: Desired | undefined
  const known = await readJson<KnownGood>(paths.policy)
  if (!known)
    await saveForeignRuleset(o.run, paths.saved).catch((e: Error) =>
      o.log({
        msg: 'could not save the firewall found on this host; unpair --firewall-restore saved will not be possible',
        error: e.message,
      }),
    )

  const events = new Outbox(paths.events, paths.eventsOffset)
  const flows = new Outbox(paths.flows, paths.flowsOffset, { maxBytes: config.flows.bufferBytes })
  let link: ServerLink | undefined
  const record = (e: AgentEvent) => {
    events.append([e]).then(() => link?.upload(), logError('cannot record event'))
  }
  const collector = new FlowCollector({
    config: config.flows,
    outbox: flows,
    log: o.log,
    onFlushed: () => {
      writeStatus(enforcer.status)
      void link?.upload()
    },
  })
  /** Flow collection follows the policy; confirmations are watched only if a drop can follow us. */
  const configureFlows = () => {
    const p = current?.policy
    const mode = p?.mode.mode ?? 'exclusive'
    const dropsAfterUs = analyseImpact(ruleset, { backend: choice.backend, mode }).some(
      (i) => i.kind === 'override',
    )
    collector.configure(p, !suspended && p?.mode.applied === true, dropsAfterUs)
  }
  const startedAt = new Date().toISOString()
  let current: KnownGood | undefined = known
  let source = known ? 'last known-good copy' : 'none yet'
  let suspended = existsSync(paths.suspended)
  let desired: Desired | undefined
  const serverUrl = config.server && !o.policyFile ? new URL(config.server.url) : undefined
  const failsafe: Failsafe = {
    // The channel to the server stays open whatever the policy says.
    servers: serverUrl
      ? [
          {
            address: serverUrl.hostname.replace(/^\[|\]$/g, ''),
            port: Number(serverUrl.port || 443),
          },
        ]
      : [],
    managementPorts: config.managementPorts,
    dhcpClient: true,
  }

  const writeStatus = (enforcement: EnforcementStatus, state: AgentStatus['state'] = 'running') => {
    const p = current?.policy
    statusFile.write({
      pid: process.pid,
      state,
      startedAt,
      updatedAt: new Date().toISOString(),
      backend: choice.backend,
      backendReason: choice.reason,
      warnings: choice.warnings,
      os: os.prettyName,
      survey,
      ...(p && {
        policy: {
          source,
          version: p.version,
          enforcementMode: p.enforcementMode,
          mode: p.mode.mode,
        },
      }),
      ...(link && { server: link.state }),
      suspended,
      enforcement,
      flows: collector.status,
    } satisfies AgentStatus)
  }

  let lastKnownGood = known?.hash ?? known?.policy.version
  let confirmed: KnownGood | undefined = known
  const saveKnownGood = (good: KnownGood) => {
    confirmed = good
    const id = good.hash ?? good.policy.version
    if (lastKnownGood === id) return
    lastKnownGood = id
    writeJson(paths.policy, good).catch(logError('cannot save the known-good policy'))
  }
  const enforcer = new Enforcer({
    run: o.run,
    backend: choice.backend,
    // iptables-legacy and ipsets emit no change events: poll them.
    pollMs: choice.backend === 'nftables' ? null : config.pollMs,
    backstopMs: config.backstopMs,
    fight: config.fight,
    watchEvents: choice.backend !== 'iptables-legacy',
    onEvent: (e) => {
      o.log({ msg: 'event', ...e })
      record(e)
    },
    onStatus: (s) => {
      writeStatus(s)
      const verified = desired !== undefined && enforcer.verified === desired
      // Our own rules changed the host's ruleset: read it again for the server's analysis.
      if (verified && desired !== surveyedFor) {
        surveyedFor = desired
        void resurvey()
      }
      if (verified && current && !suspended) {
        // From a server, a policy is known-good once the server was reached after applying it.
        if (link) link.applied(current, s)
        else saveKnownGood({ ...current, appliedMode: s.applied?.mode })
      }
      link?.reportSoon()
    },
  })

  const desiredFor = (p: HostPolicy): Desired => {
    // Suspended: enforce nothing (an idle compile removes our rules).
    const effective = suspended
      ? { ...p, enforcementMode: 'idle' as const, mode: { ...p.mode, applied: false } }
      : p
    return compile(effective, {
      backend: choice.backend,
      failsafe,
      ...(config.nftPriority !== undefined && { priority: config.nftPriority }),
      flowLogGroup: config.flows.group,
    })
  }
  const enforce = () => {
    if (!current) return
    desired = desiredFor(current.policy)
    enforcer.setDesired(desired)
    configureFlows()
  }
  const adopt = (next: KnownGood, from: string) => {
    current = next
    source = from
    enforce()
  }

  const reloadFile = async () => {
    if (!o.policyFile) return
    try {
      adopt({ policy: await loadPolicyFile(o.policyFile) }, `file ${o.policyFile}`)
    } catch (e) {
      const reason = `policy file not applied, the previous policy stays: ${(e as Error).message}`
      o.log({ msg: 'policy file rejected', reason })
      record(event('agent.health', 'err', { reason }))
    }
  }

  enforcer.start(known?.appliedMode)
  writeStatus(enforcer.status)
  o.log({
    msg: 'agent started',
    backend: choice.backend,
    reason: choice.reason,
    warnings: choice.warnings,
    stateDir: paths.dir,
    server: serverUrl?.href ?? null,
  })
  if (o.policyFile) {
    await reloadFile()
    watchFile(o.policyFile, { interval: 500 }, () => void reloadFile())
  } else {
    enforce()
    if (config.server && serverUrl) {
      const creds = await readJson<{ token: string }>(`${paths.dir}/credentials.json`)
      if (!creds)
        throw new Error(`${paths.dir}/credentials.json is missing: activate this agent again`)
      link = new ServerLink({
        config: config.server,
        token: creds.token,
        events,
        flows,
        heartbeatMs: config.heartbeatMs,
        confirmMs: config.confirmMs,
        log: o.log,
        status: () => ({
          enforcement: enforcer.status,
          survey,
          ruleset,
          backend: choice.backend,
          interfaces,
          failsafe,
          suspended,
          flows: collector.status,
        }),
        onPolicy: (policy, hash) => adopt({ policy, hash }, 'server'),
        onConfirmed: (good) =>
          saveKnownGood({ ...good, appliedMode: enforcer.status.applied?.mode }),
        onRollback: (reason) => {
          o.log({ msg: 'rolled back', reason })
          record(event('agent.firewall_apply_failed', 'err', { reason, rolled_back: true }))
          if (confirmed) adopt(confirmed, 'last confirmed policy (rolled back)')
        },
        onChange: () => writeStatus(enforcer.status),
        onUnpair: (mode) => {
          o.log({ msg: 'unpaired by the server', firewall_restore: mode })
          enforcer.stop()
          void collector.stop()
          const tcp = config.managementPorts
            .filter((sp) => sp.proto === 6 && sp.port !== undefined)
            .map((sp) => sp.port as number)
          void restoreFirewall(o.run, choice.backend, mode, paths.saved, tcp)
            .catch(logError('restoring the firewall after unpair failed'))
            .then(() => link?.stop())
            .then(async () => {
              process.off('SIGHUP', onHup)
              await rm(paths.dir, { recursive: true, force: true })
              o.onUnpaired?.()
            })
        },
      })
      link.start(known?.hash)
    }
  }

  const onHup = () => {
    const now = existsSync(paths.suspended)
    if (now !== suspended) {
      suspended = now
      record(event(now ? 'agent.suspend' : 'agent.unsuspend', 'info', {}))
    }
    enforce()
    void reloadFile()
  }
  process.on('SIGHUP', onHup)
  // Foreign firewalls change without telling us: look again now and then.
  const surveyTimer = setInterval(() => void resurvey(), config.surveyMs)

  return {
    enforcer,
    paths,
    stop: async () => {
      process.off('SIGHUP', onHup)
      clearInterval(surveyTimer)
      if (o.policyFile) unwatchFile(o.policyFile)
      enforcer.stop()
      await collector.stop()
      await link?.stop()
      writeStatus(enforcer.status, 'stopped')
      await statusFile.flush()
      await release()
    },
  }
}
