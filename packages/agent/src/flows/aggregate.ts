import type { Direction } from '@palisade/model'
import type { FlowLogTag, LoggedDecision } from '@palisade/firewall'
import type { LoggedPacket } from './nflog-pcap.js'
import { connectionKey } from './conntrack-events.js'

/** One line of the flow outbox and of the upload to the server (snake case, as on the wire). */
export interface FlowSummary {
  readonly direction: Direction
  readonly src_ip: string
  readonly dst_ip: string
  /** Only at `flow_full_detail`: one summary per client port. */
  readonly src_port?: number
  readonly port?: number
  readonly proto: number
  readonly icmp_type?: number
  readonly icmp_code?: number
  readonly policy_decision: LoggedDecision
  readonly rule_href: string | null
  readonly num_connections: number
  readonly first_seen: string
  readonly last_seen: string
  /** We passed the connection on, and the kernel never confirmed it: a later rule dropped it. */
  readonly dropped_downstream: boolean
}

export interface AggregatorOptions {
  /** Keep the client's port (`flow_full_detail`) instead of summing over it. */
  readonly detail: boolean
  /** How long to wait for the kernel to confirm a connection we passed on. */
  readonly graceMs: number
  /** Whether confirmations are watched at all; if not, nothing is called dropped downstream. */
  readonly confirmations: boolean
  /** Host rule href for a prefix's rule key (the agent knows its policy). */
  readonly ruleHref: (ruleLogKey: string) => string | undefined
}

interface Pending {
  readonly packet: LoggedPacket
  readonly tag: FlowLogTag
  readonly key: string
}

/** A connection is one first packet: a retransmitted SYN is the same tuple within this window. */
const SAME_CONNECTION_MS = 120_000
const CONFIRM_MEMORY_MS = 60_000

/**
 * Turns logged first packets into flow summaries: one per (direction, addresses, port,
 * protocol, decision, rule, dropped downstream) and interval, counting connections once.
 * Pure: time is passed in, nothing is read or written.
 */
export class FlowAggregator {
  readonly #o: AggregatorOptions
  #pending: Pending[] = []
  readonly #confirmed = new Map<string, number>()
  readonly #seen = new Map<string, { at: number; summary: string }>()
  #open = new Map<string, Mutable>()
  /** Confirmations before this time may have been lost: no drop is claimed for them. */
  #blindUntil = -Infinity

  constructor(o: AggregatorOptions) {
    this.#o = o
  }

  logged(packet: LoggedPacket, tag: FlowLogTag): void {
    this.#pending.push({ packet, tag, key: connectionKey(packet) })
  }

  confirmed(tuple: string, timeMs: number): void {
    this.#confirmed.set(tuple, timeMs)
  }

  /** The confirmation reader lost events (or restarted): claim no drops up to `timeMs`. */
  confirmationsLost(timeMs: number): void {
    this.#blindUntil = Math.max(this.#blindUntil, timeMs)
  }

  /**
   * Counts every pending packet whose grace has passed at `nowMs` (all of them if `final`,
   * without claiming drops that could not yet be seen).
   */
  settle(nowMs: number, final = false): void {
    const keep: Pending[] = []
    for (const p of this.#pending) {
      if (!final && p.packet.timeMs + this.#o.graceMs > nowMs) keep.push(p)
      else this.#count(p, final)
    }
    this.#pending = keep
    for (const [k, at] of this.#confirmed)
      if (at < nowMs - CONFIRM_MEMORY_MS) this.#confirmed.delete(k)
    for (const [k, s] of this.#seen) if (s.at < nowMs - SAME_CONNECTION_MS) this.#seen.delete(k)
  }

  /** The summaries counted since the last drain. */
  drain(): FlowSummary[] {
    const out = [...this.#open.values()].map(freeze)
    this.#open = new Map()
    return out
  }

  #count(p: Pending, final: boolean): void {
    const { packet: pk, tag } = p
    const passed = tag.decision !== 'blocked'
    const dropped =
      passed &&
      this.#o.confirmations &&
      !final &&
      pk.timeMs > this.#blindUntil &&
      !this.#confirmed.has(p.key)
    const rule = tag.ruleLogKey === null ? null : (this.#o.ruleHref(tag.ruleLogKey) ?? null)
    const summary: Omit<Mutable, 'num_connections' | 'first_seen' | 'last_seen'> = {
      direction: tag.direction,
      src_ip: pk.src,
      dst_ip: pk.dst,
      ...(this.#o.detail && pk.sport !== undefined && { src_port: pk.sport }),
      ...(pk.dport !== undefined && { port: pk.dport }),
      proto: pk.proto,
      ...(pk.icmp && { icmp_type: pk.icmp.type, icmp_code: pk.icmp.code }),
      policy_decision: tag.decision,
      rule_href: rule,
      dropped_downstream: dropped,
    }
    const sk = JSON.stringify(summary)
    const seen = this.#seen.get(p.key)
    const at = new Date(pk.timeMs).toISOString()
    if (seen) {
      // A retransmission of a connection already counted: it only moves last_seen.
      seen.at = pk.timeMs
      const first = this.#open.get(seen.summary)
      if (first && at > first.last_seen) first.last_seen = at
      return
    }
    this.#seen.set(p.key, { at: pk.timeMs, summary: sk })
    const open = this.#open.get(sk)
    if (open) {
      open.num_connections++
      if (at < open.first_seen) open.first_seen = at
      if (at > open.last_seen) open.last_seen = at
    } else this.#open.set(sk, { ...summary, num_connections: 1, first_seen: at, last_seen: at })
  }
}

type Mutable = { -readonly [K in keyof FlowSummary]: FlowSummary[K] }
const freeze = (m: Mutable): FlowSummary => ({ ...m })
