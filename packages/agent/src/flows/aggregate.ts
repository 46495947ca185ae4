import type { FlowSummary } from '@palisade/model'
import type { FlowCountEntry, FlowLogTag } from '@palisade/firewall'
import type { LoggedPacket } from './nflog-pcap.js'
import { connectionKey } from './conntrack-events.js'

export interface AggregatorOptions {
  /** Keep the client's port (`flow_full_detail`) instead of summing over it. */
  readonly detail: boolean
  /** How long to wait for the kernel to confirm a connection we passed on. */
  readonly graceMs: number
  /** Host rule href for a prefix's rule key (the agent knows its policy). */
  readonly ruleHref: (ruleLogKey: string) => string | undefined
}

interface Pending {
  readonly packet: LoggedPacket
  readonly tag: FlowLogTag
  /** The connection as conntrack names it. */
  readonly key: string
  /** The connection attempt: a retransmitted TCP SYN keeps its sequence number, a new one not. */
  readonly attempt: string
}

/** Without a sequence number, repeats of a tuple within this window are one connection. */
const SAME_CONNECTION_MS = 120_000
/** Bounds the memory of attempts seen at high connection rates; the oldest are forgotten first. */
const MAX_ATTEMPTS = 200_000
/** Pending packets are judged within their grace: older confirmations are of no use. */
const CONFIRM_MEMORY_MS = 10_000
/** The two readers stamp times apart: a confirmation may carry a time a little before the log's. */
const CLOCK_SLACK_MS = 500

/**
 * Turns logged first packets into flow summaries: one per (direction, addresses, port,
 * protocol, decision, rule, dropped downstream) and interval, counting connections once.
 * Pure: time is passed in, nothing is read or written.
 */
export class FlowAggregator {
  readonly #o: AggregatorOptions
  #pending: Pending[] = []
  readonly #confirmed = new Map<string, number>()
  /** Attempts counted, in the order first seen, with the summary each went to. */
  readonly #seen = new Map<string, { first: number; summary: string }>()
  #open = new Map<string, Open>()
  /** Confirmations before this time may have been lost: no drop is claimed for them. */
  #blindUntil = -Infinity
  /** Without a watch on confirmations, nothing is called dropped downstream. */
  #watching = false

  constructor(o: AggregatorOptions) {
    this.#o = o
  }

  logged(packet: LoggedPacket, tag: FlowLogTag): void {
    if (packet.opening === false) return
    const key = connectionKey(packet)
    const p = { packet, tag, key, attempt: `${key} ${packet.seq ?? ''}` }
    // Only a watched connection must wait for its confirmation.
    if (this.#watching && tag.decision !== 'blocked') this.#pending.push(p)
    else this.#count(p, false)
  }

  confirmed(tuple: string, timeMs: number): void {
    // Re-inserted, so that the map stays in time order and pruning can stop at the first fresh one.
    this.#confirmed.delete(tuple)
    this.#confirmed.set(tuple, timeMs)
  }

  watchConfirmations(on: boolean): void {
    this.#watching = on
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
    for (const [k, at] of this.#confirmed) {
      if (at >= nowMs - CONFIRM_MEMORY_MS) break
      this.#confirmed.delete(k)
    }
    for (const [k, s] of this.#seen) {
      if (s.first >= nowMs - SAME_CONNECTION_MS) break
      this.#seen.delete(k)
    }
  }

  /** The summaries counted since the last drain. */
  drain(): FlowSummary[] {
    const out = [...this.#open.values()].map(({ firstMs, lastMs, ...rest }) => ({
      ...rest,
      first_seen: new Date(firstMs).toISOString(),
      last_seen: new Date(lastMs).toISOString(),
    }))
    this.#open = new Map()
    return out
  }

  #count(p: Pending, final: boolean): void {
    const { packet: pk, tag } = p
    const seen = this.#seen.get(p.attempt)
    if (seen) {
      // A retransmission of a connection already counted: it only moves last_seen.
      const first = this.#open.get(seen.summary)
      if (first && pk.timeMs > first.lastMs) first.lastMs = pk.timeMs
      return
    }
    const dropped =
      tag.decision !== 'blocked' &&
      this.#watching &&
      !final &&
      pk.timeMs > this.#blindUntil &&
      (this.#confirmed.get(p.key) ?? -Infinity) < pk.timeMs - CLOCK_SLACK_MS
    const sport = this.#o.detail ? pk.sport : undefined
    const sk = this.#add(
      {
        direction: tag.direction,
        src_ip: pk.src,
        dst_ip: pk.dst,
        ...(sport !== undefined && { src_port: sport }),
        ...(pk.dport !== undefined && { port: pk.dport }),
        proto: pk.proto,
        ...(pk.icmp && { icmp_type: pk.icmp.type, icmp_code: pk.icmp.code }),
        policy_decision: tag.decision,
        rule_href: this.#href(tag),
        dropped_downstream: dropped,
      },
      1,
      pk.timeMs,
      pk.timeMs,
    )
    this.#seen.set(p.attempt, { first: pk.timeMs, summary: sk })
    if (this.#seen.size > MAX_ATTEMPTS) {
      const oldest = this.#seen.keys().next().value
      if (oldest !== undefined) this.#seen.delete(oldest)
    }
  }

  /**
   * Connections the kernel counted under one key (allowed, so nothing is dropped downstream:
   * the kernel counts only where no foreign rule after ours can drop) between two reads.
   */
  counted(e: FlowCountEntry, tag: FlowLogTag, firstMs: number, lastMs: number): void {
    const icmp = e.proto === 1 || e.proto === 58
    this.#add(
      {
        direction: tag.direction,
        src_ip: e.src,
        dst_ip: e.dst,
        ...(PORTED.has(e.proto) && { port: e.port }),
        proto: e.proto,
        // conntrack's ICMP `proto-dst` is type and code.
        ...(icmp && { icmp_type: e.port >> 8, icmp_code: e.port & 0xff }),
        policy_decision: tag.decision,
        rule_href: this.#href(tag),
        dropped_downstream: false,
      },
      e.connections,
      firstMs,
      lastMs,
    )
  }

  #href(tag: FlowLogTag): string | null {
    return tag.ruleLogKey === null ? null : (this.#o.ruleHref(tag.ruleLogKey) ?? null)
  }

  /** Adds `n` connections to the summary of `f`; returns that summary's key. */
  #add(f: Fields, n: number, firstMs: number, lastMs: number): string {
    // A plain string key: this runs for every connection.
    const sk = `${f.direction}|${f.src_ip}|${f.dst_ip}|${f.src_port ?? ''}|${f.port ?? ''}|${f.proto}|${f.icmp_type ?? ''}|${f.icmp_code ?? ''}|${f.policy_decision}|${f.rule_href ?? ''}|${f.dropped_downstream ? 1 : 0}`
    const open = this.#open.get(sk)
    if (open) {
      open.num_connections += n
      if (firstMs < open.firstMs) open.firstMs = firstMs
      if (lastMs > open.lastMs) open.lastMs = lastMs
      return sk
    }
    this.#open.set(sk, { ...f, num_connections: n, firstMs, lastMs })
    return sk
  }
}

/** The protocols whose `proto-dst` is a port. */
const PORTED = new Set([6, 17, 132, 136])

/** What a summary is keyed by. */
type Fields = Omit<FlowSummary, 'first_seen' | 'last_seen' | 'num_connections'>

/** A summary being counted: times as numbers until it is drained. */
type Open = Fields & {
  num_connections: number
  firstMs: number
  lastMs: number
}
