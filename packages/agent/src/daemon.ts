import type { Backend, Desired } from '@palisade/firewall'
import { BACKENDS, compile } from '@palisade/firewall'
import type { Failsafe, HostPolicy, ServicePort } from '@palisade/model'
import { hostPolicyFromLocalFile } from '@palisade/model'
import { existsSync, unwatchFile, watchFile } from 'node:fs'
import { readFile } from 'node:fs/promises'
import type { BackendChoice } from './detect.js'
import { chooseBackend, countRules } from './detect.js'
import type { EnforcementStatus } from './enforcer.js'
import { Enforcer, event } from './enforcer.js'
import { EventLog } from './events.js'
import type { Runner } from './exec.js'
import { activeServices, installedTools, readOsRelease } from './host-facts.js'
import { saveForeignRuleset } from './netfilter/foreign-save.js'
import { readHost } from './netfilter/read-host.js'
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
}

export const DEFAULT_CONFIG: AgentConfig = {
  backend: 'auto',
  managementPorts: [{ proto: 6, port: 22 }],
  pollMs: 1000,
  backstopMs: 30_000,
  fight: { windowMs: 10_000, threshold: 3 },
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
  readonly suspended: boolean
  readonly enforcement: EnforcementStatus
}

/** The last policy we applied and verified: enforced again after a restart without a server. */
interface KnownGood {
  readonly policy: HostPolicy
  readonly appliedMode?: string
}

interface Detected {
  readonly choice: BackendChoice
  readonly survey: RulesetSurvey
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
  }
}

export interface RunAgentOptions {
  readonly stateDir: string
  readonly run: Runner
  /** Standalone mode: enforce this local policy file and follow its changes. */
  readonly policyFile?: string
  readonly backend?: Backend | 'auto'
  readonly log: (line: Record<string, unknown>) => void
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
 * first takeover, enforces the policy (from a local file, or the last known-good copy), and
 * keeps `status.json` and the event log current. Returns a function that stops it; our rules
 * stay in the kernel when it stops, so the host stays protected.
 */
export async function runAgent(
  o: RunAgentOptions,
): Promise<{ stop: () => Promise<void>; enforcer: Enforcer; paths: StatePaths }> {
  const paths = await ensureStateDir(o.stateDir)
  const release = await claimStateDir(paths)
  const config: AgentConfig = {
    ...DEFAULT_CONFIG,
    ...(await readJson<Partial<AgentConfig>>(paths.config)),
  }
  if (!existsSync(paths.config)) await writeJson(paths.config, config)
  const requested = o.backend ?? config.backend
  if (requested !== 'auto' && !BACKENDS.includes(requested))
    throw new Error(`unknown backend ${String(requested)}; use auto, ${BACKENDS.join(', ')}`)

  const os = await readOsRelease()
  // Until the host can be read and a backend chosen, report why, and try again with back-off:
  // an agent that cannot enforce must say so, not crash-loop.
  let detected: Detected | undefined
  for (let attempt = 1; !detected; attempt++) {
    try {
      detected = await detectHost(o.run, requested, os)
    } catch (e) {
      const reason = `cannot start enforcing: ${(e as Error).message}`
      o.log({ msg: 'agent unhealthy', reason, attempt })
      await writeJson(paths.status, {
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
  const { choice, survey } = detected
  const known = await readJson<KnownGood>(paths.policy)
  if (!known)
    await saveForeignRuleset(o.run, paths.saved).catch((e: Error) =>
      o.log({
        msg: 'could not save the firewall found on this host; unpair --firewall-restore saved will not be possible',
        error: e.message,
      }),
    )

  const events = new EventLog(paths.events)
  const startedAt = new Date().toISOString()
  let policy: HostPolicy | undefined = known?.policy
  let source = known ? 'last known-good copy' : 'none yet'
  let suspended = existsSync(paths.suspended)
  let status: AgentStatus | undefined
  const failsafe: Failsafe = {
    servers: [],
    managementPorts: config.managementPorts,
    dhcpClient: true,
  }

  const statusFile = new LatestJsonWriter(paths.status, (e) =>
    o.log({ msg: 'cannot write status', error: e.message }),
  )
  const logError = (what: string) => (e: Error) => o.log({ msg: what, error: e.message })
  const writeStatus = (enforcement: EnforcementStatus, state: AgentStatus['state'] = 'running') => {
    status = {
      pid: process.pid,
      state,
      startedAt,
      updatedAt: new Date().toISOString(),
      backend: choice.backend,
      backendReason: choice.reason,
      warnings: choice.warnings,
      os: os.prettyName,
      survey,
      ...(policy && {
        policy: {
          source,
          version: policy.version,
          enforcementMode: policy.enforcementMode,
          mode: policy.mode.mode,
        },
      }),
      suspended,
      enforcement,
    }
    statusFile.write(status)
  }

  let lastKnownGood = known?.policy.version
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
      events.record(e).catch(logError('cannot record event'))
    },
    onStatus: (s) => {
      writeStatus(s)
      if (
        s.applied &&
        policy &&
        !suspended &&
        s.applied.version === policy.version &&
        lastKnownGood !== policy.version
      ) {
        lastKnownGood = policy.version
        writeJson(paths.policy, { policy, appliedMode: s.applied.mode } satisfies KnownGood).catch(
          logError('cannot save the known-good policy'),
        )
      }
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
    })
  }
  const enforce = () => {
    if (policy) enforcer.setDesired(desiredFor(policy))
  }

  const reloadFile = async () => {
    if (!o.policyFile) return
    try {
      policy = await loadPolicyFile(o.policyFile)
      source = `file ${o.policyFile}`
      enforce()
    } catch (e) {
      const reason = `policy file not applied, the previous policy stays: ${(e as Error).message}`
      o.log({ msg: 'policy file rejected', reason })
      events.record(event('agent.health', 'err', { reason })).catch(logError('cannot record event'))
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
  })
  if (o.policyFile) {
    await reloadFile()
    watchFile(o.policyFile, { interval: 500 }, () => void reloadFile())
  } else enforce()

  const onHup = () => {
    const now = existsSync(paths.suspended)
    if (now !== suspended) {
      suspended = now
      events
        .record(event(now ? 'agent.suspend' : 'agent.unsuspend', 'info', {}))
        .catch(logError('cannot record event'))
    }
    enforce()
    void reloadFile()
  }
  process.on('SIGHUP', onHup)

  return {
    enforcer,
    paths,
    stop: async () => {
      process.off('SIGHUP', onHup)
      if (o.policyFile) unwatchFile(o.policyFile)
      enforcer.stop()
      writeStatus(enforcer.status, 'stopped')
      await statusFile.flush()
      await release()
    },
  }
}
