/**
 * How the agent compiles a policy for its host: with the failsafe (the policy server's
 * addresses, management, DHCP) and its own settings; suspended, nothing of ours is enforced.
 */
import type { Backend, Desired } from '@palisade/firewall'
import { compile } from '@palisade/firewall'
import type { Failsafe, HostPolicy } from '@palisade/model'
import type { AgentConfig } from './agent-config.js'
import { failsafeOf } from './agent-config.js'
import type { ClusterAddresses } from './server-addresses.js'

export interface HostCompileOptions {
  readonly backend: Backend
  readonly config: AgentConfig
  /** The policy servers' addresses, when paired. */
  readonly servers: ClusterAddresses | undefined
  readonly suspended: boolean
  /** Count allowed connections in the kernel where the backend can (see CompileOptions). */
  readonly flowCounting?: boolean
}

/** The kernel state for `policy`; throws while no server's name ever resolved. */
export function compileForHost(policy: HostPolicy, o: HostCompileOptions): Desired {
  const { config } = o
  const p = o.suspended
    ? { ...policy, enforcementMode: 'idle' as const, mode: { ...policy.mode, applied: false } }
    : policy
  return compile(p, {
    backend: o.backend,
    // Throws while no server's name ever resolved: nothing can be compiled then.
    failsafe: failsafeOf(config, o.servers?.endpoints ?? []),
    ...(config.nftPriority !== undefined && { priority: config.nftPriority }),
    flowLogGroup: config.flows.group,
    ...(o.flowCounting !== undefined && { flowCounting: o.flowCounting }),
  })
}

/** What the failsafe allows now, for the server's explanations (no server yet: none). */
export function failsafeNow(config: AgentConfig, servers: ClusterAddresses | undefined): Failsafe {
  let endpoints: readonly { address: string; port: number }[] = []
  try {
    endpoints = servers?.endpoints ?? []
  } catch {
    // the name never resolved: the failsafe allows no server yet
  }
  return failsafeOf(config, endpoints)
}
