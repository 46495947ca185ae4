import type { Backend } from '@palisade/firewall'
import type { AgentBuild, StatusReply } from '@palisade/protocol'
import type { AgentConfig } from './agent-config.js'
import type { Clock } from './clock.js'
import type { Dataplane } from './dataplane.js'
import type { ProcessStarter, Runner } from './exec.js'
import type { OsRelease } from './host-facts.js'
import type { HostView } from './host-survey.js'
import type { NameResolver } from './server-addresses.js'
import type { LatestJsonWriter, StatePaths } from './state-dir.js'

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
