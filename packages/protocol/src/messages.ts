/**
 * Every message of the agent channel, in both directions, as JSON on the wire (snake case where
 * the API is, the model's names inside a host policy). See the parsers for what each end checks.
 */
import type { Backend, Ruleset } from '@palisade/firewall'
import type {
  AddressSet,
  Doc,
  EventSeverity,
  Failsafe,
  FlowSummaryUpload,
  OsPlatform,
  PolicyDoc,
  VisibilityLevel,
  WorkloadInterface,
} from '@palisade/model'
import type { AgentArch, AgentEventType, HealthState, RestoreMode } from './enums.js'

// ---- from the agent to the server --------------------------------------------------------

/** `POST activate`: an activation code buys the agent its credential. */
export interface ActivateRequest {
  readonly activation_code: string
  readonly hostname: string
  /** Absent: linux. */
  readonly os_platform?: OsPlatform
  readonly os_detail?: string
  /** The host's addresses; other hosts' policies name them as peers. */
  readonly interfaces?: readonly WorkloadInterface[]
  /** Accepted and ignored: the pairing profile decides the agent type. */
  readonly agent_type?: unknown
}

/** An activation request as the server reads it: the defaults filled in. */
export interface ActivateRequestChecked {
  readonly activation_code: string
  readonly hostname: string
  readonly os_platform: OsPlatform
  readonly interfaces: readonly WorkloadInterface[]
}

/** Repairs of our rules: each one, and whether another process keeps undoing them. */
export interface TamperingStatus {
  readonly condition: 'none' | 'ongoing'
  readonly repairs: number
  readonly lastAt?: string
  readonly lastBy?: string
}

/** Flow collection: the level the policy asks for, the readers' state and what they counted. */
export interface FlowsStatus {
  readonly level: VisibilityLevel
  readonly readers: {
    readonly log: string
    readonly confirmations: string
    /** The reader of the kernel's counts (nftables); absent where none is used. */
    readonly counting?: string
  }
  readonly packets: number
  readonly summaries: number
}

/** The `health` part of a status report. */
export interface HealthReport {
  readonly health: HealthState
  readonly reason: string | null
  readonly tampering: TamperingStatus
  readonly suspended: boolean
  /** `dropped`: summaries the agent's outbox had to drop while the server was away. */
  readonly flows: FlowsStatus & { readonly dropped: number }
  /** What our chains always let through, for the server's explanations. */
  readonly failsafe: Failsafe
}

export type ForeignFirewall =
  'firewalld' | 'ufw' | 'docker' | 'suse-firewall' | 'kubernetes' | 'manual'

export interface FoundFirewall {
  readonly kind: ForeignFirewall
  /** Where the agent saw it: tables and chains. */
  readonly evidence: readonly string[]
  /** firewalld: the zones and what their allow chains accept. */
  readonly zones?: readonly { readonly zone: string; readonly allows: readonly string[] }[]
}

export interface Recommendation {
  readonly severity: 'info' | 'warning'
  readonly message: string
}

/** The `survey` part of a status report: the firewalls found on the host. */
export interface RulesetSurvey {
  readonly firewalls: readonly FoundFirewall[]
  readonly foreignTables: readonly string[]
  readonly recommendations: readonly Recommendation[]
}

/** The policy the kernel holds, verified. */
export interface AppliedReport {
  readonly version: number
  readonly hash: string
  readonly mode?: string
}

/** The build an agent runs, so the server can tell it to run another. */
export interface AgentBuild {
  readonly version: string
  /** The one-file agent the server offers it. */
  readonly arch: AgentArch
  /** Of the running one-file agent's executable; null when it runs from a source checkout. */
  readonly sha256: string | null
}

/**
 * `POST status`, on every change and as a heartbeat. Parts the server already has (the ruleset,
 * the addresses) are left out until they change.
 */
export interface StatusReport {
  readonly applied?: AppliedReport
  readonly health?: HealthReport
  readonly survey?: RulesetSurvey
  /** The host's addresses now: peers on other hosts follow them when they change. */
  readonly interfaces?: readonly WorkloadInterface[]
  /** The host's whole live ruleset as the agent parsed it: the server reads it, never runs it. */
  readonly ruleset?: Ruleset
  readonly backend?: Backend
  /** Sent by agents that follow upgrade orders (they read a 200 reply). */
  readonly build?: AgentBuild
}

export const STATUS_REPORT_KEYS = [
  'applied',
  'health',
  'survey',
  'interfaces',
  'ruleset',
  'backend',
  'build',
] as const satisfies readonly (keyof StatusReport)[]

/**
 * A status report as the server reads it: health, survey and ruleset are stored as they came
 * and read back by the API, so they are checked to be objects (the ruleset: of two lists).
 */
export interface StatusReportChecked {
  readonly applied?: AppliedReport
  readonly health?: Doc
  readonly survey?: Doc
  readonly ruleset?: Doc
  readonly backend?: Backend
  readonly interfaces?: readonly WorkloadInterface[]
  readonly build?: AgentBuild
}

/** One event; a batch is `POST events`. The uuid makes a re-sent event count once. */
export interface AgentEvent {
  readonly event_type: AgentEventType
  readonly severity: EventSeverity
  readonly timestamp: string
  readonly uuid: string
  readonly details: Doc
}

/** The most events or flow summaries in one batch. */
export const BATCH_LIMIT = 1000

export type EventsBatch = readonly AgentEvent[]
/** `POST flows`. */
export type FlowsBatch = readonly FlowSummaryUpload[]

/** `POST goodbye`: an empty object; the server reads nothing of it. */
export type Goodbye = Record<string, never>

// ---- from the server to the agent --------------------------------------------------------

/** The reply to `activate` (201). */
export interface ActivateReply {
  readonly agent_id: string
  readonly workload_href: string
  /** The agent's credential: `Authorization: Bearer <token>` from now on. */
  readonly token: string
  /** Where agents reach the server. */
  readonly agent_endpoint: { readonly address: string; readonly port: number }
}

/** The answers to a policy request, by HTTP status. */
export const POLICY_STATUS = { policy: 200, unchanged: 304, unpair: 410 } as const

/**
 * 200: the host policy, and its hash (what the agent reports as applied, and polls with). An
 * agent that asks with `sets=ref` gets its large peer sets by id (see address-set-refs.ts) and
 * fetches the ones it does not hold; one that does not gets them written out.
 */
export interface PolicyReply {
  readonly hash: string
  readonly policy: PolicyDoc
}

/**
 * `POST address_sets`: the sets the agent's policy names and it does not hold, each with the
 * set it holds for the same rule (`from`), which a delta may start from.
 */
export interface SetsRequest {
  readonly want: readonly SetWant[]
}

export interface SetWant {
  readonly id: string
  readonly from?: string
}

/** A set as the server sends it: written out, or what changed from a set the agent holds. */
export type SetEntry =
  | { readonly id: string; readonly set: AddressSet }
  | {
      readonly id: string
      readonly from: string
      readonly add: AddressSet
      readonly remove: AddressSet
    }

/**
 * 200: the sets asked for. `gone`: sets the agent's policy no longer names (it changed since the
 * agent got it); the agent asks for its policy again.
 */
export interface SetsReply {
  readonly sets: readonly SetEntry[]
  readonly gone: readonly string[]
}

/** 410: the agent was unpaired; it restores the firewall as asked, says goodbye and forgets. */
export interface UnpairReply {
  readonly unpair: { readonly firewall_restore: RestoreMode }
}

/** The answers to a status report: stored (nothing to say), or stored with orders. */
export const STATUS_REPLY = { stored: 204, orders: 200 } as const

/**
 * Run another build: download it from this server (`agentDownloadRoute`, over the agent's own
 * TLS channel), check its size and SHA-256, swap it in and restart. Sent only to agents that
 * report their `build`, and only while it differs from theirs.
 */
export interface UpgradeOrder {
  /** The release, as the server's agent package names it. */
  readonly release: string
  readonly sha256: string
  readonly size: number
}

/** 200 to a status report. */
export interface StatusReply {
  readonly upgrade?: UpgradeOrder
}

/** An error reply (4xx): the API's `[{token, message}]`. */
export type ErrorReply = readonly { readonly token: string; readonly message: string }[]
