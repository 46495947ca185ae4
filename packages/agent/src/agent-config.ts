import type { Backend } from '@palisade/firewall'
import { BACKENDS } from '@palisade/firewall'
import type { Failsafe, ServicePort } from '@palisade/model'
import { existsSync } from 'node:fs'
import type { FlowConfig } from './flows/collector.js'
import { DEFAULT_FLOW_CONFIG } from './flows/collector.js'
import type { ServerConfig } from './server-client.js'
import type { StatePaths } from './state-dir.js'
import { readJson, writeJson } from './state-dir.js'

/** `config.json` in the state dir. */
export interface AgentConfig {
  readonly backend: Backend | 'auto'
  /** Inbound ports always allowed, whatever the policy (default TCP 22). */
  readonly managementPorts: readonly ServicePort[]
  /**
   * How often what sends no change events (iptables-legacy rules, ipsets) is looked at: a cheap
   * look (the sets' headers; the filter tables' listings where their digest cannot run), and a
   * read only when it changed. Where it runs, the digest of iptables-legacy's filter tables is
   * looked at every 25 ms (see running-agent.ts).
   */
  readonly pollMs: number
  readonly backstopMs: number
  /** Repairs this close together count as another process fighting us: one ongoing condition. */
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
  /** A new build that has not reported to the server within this is rolled back. */
  readonly upgradeTrialMs: number
}

export const DEFAULT_CONFIG: AgentConfig = {
  backend: 'auto',
  managementPorts: [{ proto: 6, port: 22 }],
  pollMs: 200,
  backstopMs: 30_000,
  fight: { windowMs: 10_000, threshold: 3 },
  heartbeatMs: 60_000,
  confirmMs: 20_000,
  flows: DEFAULT_FLOW_CONFIG,
  surveyMs: 60_000,
  upgradeTrialMs: 60_000,
}

/**
 * The state dir's config over the defaults. The file holds only what differs from them (state
 * format 2), so a newer agent's defaults reach a host it upgrades; it is made empty the first time.
 */
export async function loadConfig(paths: StatePaths): Promise<AgentConfig> {
  const file = await readJson<Partial<AgentConfig>>(paths.config)
  const config: AgentConfig = {
    ...DEFAULT_CONFIG,
    ...file,
    flows: { ...DEFAULT_FLOW_CONFIG, ...file?.flows },
  }
  if (!existsSync(paths.config)) await writeJson(paths.config, {})
  return config
}

/** The backend asked for on the command line or in the config; refuses one that does not exist. */
export function requestedBackend(config: AgentConfig, flag?: Backend | 'auto'): Backend | 'auto' {
  const requested = flag ?? config.backend
  if (requested !== 'auto' && !BACKENDS.includes(requested))
    throw new Error(`unknown backend ${String(requested)}; use auto, ${BACKENDS.join(', ')}`)
  return requested
}

/**
 * What our chains let through whatever the policy: the channel to every server of the cluster,
 * management, DHCP.
 */
export function failsafeOf(
  config: AgentConfig,
  servers: readonly { readonly address: string; readonly port: number }[],
): Failsafe {
  return { servers, managementPorts: config.managementPorts, dhcpClient: true }
}

/** The management ports that are TCP ports, for a `closed` firewall restore. */
export const managementTcpPorts = (config: Pick<AgentConfig, 'managementPorts'>): number[] =>
  config.managementPorts.flatMap((sp) => (sp.proto === 6 && sp.port !== undefined ? [sp.port] : []))
