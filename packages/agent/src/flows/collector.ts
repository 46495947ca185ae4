import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { randomUUID } from 'node:crypto'
import type { HostPolicy } from '@palisade/model'
import type { Desired, FlowLogTag } from '@palisade/firewall'
import type { FlowsStatus } from '@palisade/protocol'
import { decodeFlowLogPrefix, flowCountTags, ruleLogKey } from '@palisade/firewall'
import type { Runner } from '../exec.js'
import type { Outbox } from '../outbox.js'
import { FlowAggregator } from './aggregate.js'
import { parseConntrackEvent } from './conntrack-events.js'
import { readIpsetCounts, readKernelCounts } from './kernel-counts.js'
import { NflogPcapReader } from './nflog-pcap.js'

export interface FlowConfig {
  /** The netlink log group our rules log to (per network namespace). */
  readonly group: number
  /** Flow summaries are written to the outbox once per interval. */
  readonly intervalMs: number
  /** The flow outbox's bound on disk; the oldest summaries go first when it is full. */
  readonly bufferBytes: number
}

export const DEFAULT_FLOW_CONFIG: FlowConfig = {
  group: 4720,
  intervalMs: 10_000,
  bufferBytes: 16 * 1024 * 1024,
}

/** What the collector reports (the `flows` part of the agent's status and health). */
export type FlowCollectorStatus = FlowsStatus

interface Reader {
  child: ChildProcess
  stopped: boolean
  /** Settles once the reader reads (tcpdump said it is listening), has exited, or was waited for. */
  ready: Promise<void>
  setReady: () => void
}

const SETTLE_MS = 500
/**
 * How long an apply waits for the log reader to listen: rules that log lose what they log
 * before it does; a reader that never starts must not hold enforcement back longer.
 */
const READY_WAIT_MS = 2000
const WAITING = 'waiting for the rules that count to be applied'
const FULL_HINT =
  'connections of keys past its size were not counted in that interval (shorten flows.intervalMs)'
const CONNTRACK_ARGS = ['-E', '-e', 'NEW', '-o', 'timestamp', '-b', String(8 * 1024 * 1024)]
/** How long a connection we passed on may take to be confirmed by the kernel and reported. */
const GRACE_MS = 2000

/**
 * Collects the flows our chains log: `tcpdump` reads our netlink log group (the prefix says
 * decision, direction and rule) and `conntrack -E` reports which connections the kernel
 * confirmed, so that one we passed on and a later firewall dropped is flagged. Where our rules
 * count allowed connections in the kernel (nftables sets, ipsets), the counts are read once per
 * interval. Summaries go to the flow outbox once per interval. Readers that exit are restarted
 * with back-off.
 */
export class FlowCollector {
  readonly #config: FlowConfig
  readonly #outbox: Outbox
  readonly #log: (line: Record<string, unknown>) => void
  readonly #onFlushed: () => void
  readonly #run: Runner | undefined
  #level: HostPolicy['visibilityLevel'] = 'flow_off'
  #rules = new Map<string, string>()
  #agg: FlowAggregator | undefined
  #nflog: Reader | undefined
  #conntrack: Reader | undefined
  #timers: NodeJS.Timeout[] = []
  readonly #tags = new Map<string, FlowLogTag | undefined>()
  /** What each counting tag stands for, of every policy seen (counts may be a version late). */
  readonly #countTags = new Map<number, FlowLogTag>()
  /** Our rules count allowed connections in the kernel: read them once per interval. */
  #counting = false
  /**
   * The desired state the enforcer verified last, if its rules count: only then are there sets
   * to read (and, on iptables, it tells which rule counted a key). The policy that turns
   * counting on is configured before its apply, so that no read misses a count; reading before
   * that apply would only find the sets missing.
   */
  #countedBy: Desired | undefined
  #lastRead = 0
  #reading: Promise<void> | undefined
  /** The read to run once the one under way is done. */
  #queued: Promise<void> | undefined
  #state: { log: string; confirmations: string; counting?: string } = {
    log: 'stopped',
    confirmations: 'stopped',
  }
  #packets = 0
  #summaries = 0
  /** Stopped for good (the agent is shutting down): nothing is started again. */
  #closed = false

  constructor(o: {
    config: FlowConfig
    outbox: Outbox
    log: (line: Record<string, unknown>) => void
    onFlushed: () => void
    /** Runs `nft` or `ipset` where our rules are, to read the kernel's counts. */
    run?: Runner
  }) {
    this.#config = o.config
    this.#outbox = o.outbox
    this.#log = o.log
    this.#onFlushed = o.onFlushed
    this.#run = o.run
  }

  get status(): FlowCollectorStatus {
    return {
      level: this.#level,
      readers: { ...this.#state },
      packets: this.#packets,
      summaries: this.#summaries,
    }
  }

  /**
   * Follows the policy being enforced (its visibility level and its rules' hrefs), whether a
   * foreign rule after ours can drop what we pass on (only then are confirmations watched), and
   * whether the rules enforced count allowed connections in the kernel.
   */
  configure(
    policy: HostPolicy | undefined,
    enforcing: boolean,
    dropsAfterUs: boolean,
    kernelCounting = false,
  ): void {
    // A late survey or policy during shutdown must not start readers that would outlive us.
    if (this.#closed) return
    // Rule hrefs of earlier versions stay known, for packets logged just before a change.
    for (const r of policy?.rules ?? []) this.#rules.set(ruleLogKey(r.key), r.ruleHref)
    const allows = (policy?.rules ?? []).filter((r) => r.action === 'allow')
    for (const [tag, t] of flowCountTags(allows)) this.#countTags.set(tag, t)
    const level = enforcing && policy ? policy.visibilityLevel : 'flow_off'
    if (level !== this.#level) {
      if (this.#level !== 'flow_off') void this.#stopReaders()
      this.#level = level
      if (level !== 'flow_off') this.#startReaders(level === 'flow_full_detail')
    }
    const counting = level !== 'flow_off' && kernelCounting && this.#run !== undefined
    if (counting !== this.#counting) {
      // The last counts of rules about to go: a replacement of the table waits for this read.
      if (!counting) void this.readCounts()
      this.#counting = counting
      this.#lastRead = Date.now()
      this.#state.counting = !counting ? 'not used' : this.#countedBy ? 'running' : WAITING
    }
    const watch = level !== 'flow_off' && dropsAfterUs
    if (watch === (this.#conntrack !== undefined)) return
    if (watch) {
      // Connections logged before the watch began cannot be judged.
      this.#agg?.confirmationsLost(Date.now())
      this.#agg?.watchConfirmations(true)
      this.#conntrack = this.#follow('confirmations', 'conntrack', CONNTRACK_ARGS)
    } else {
      this.#agg?.watchConfirmations(false)
      this.#stop(this.#conntrack)
      this.#conntrack = undefined
      this.#state.confirmations = 'not needed: no firewall after ours can drop'
    }
  }

  #startReaders(detail: boolean): void {
    this.#agg = new FlowAggregator({
      detail,
      graceMs: GRACE_MS,
      ruleHref: (k) => this.#rules.get(k),
    })
    this.#nflog = this.#follow('log', 'tcpdump', [
      '-i',
      `nflog:${this.#config.group}`,
      '-U',
      '-B',
      '4096',
      '-s',
      '512',
      '-w',
      '-',
    ])
    this.#timers = [
      setInterval(() => this.#agg?.settle(Date.now()), SETTLE_MS),
      setInterval(() => void this.#readAndFlush(), this.#config.intervalMs),
    ]
  }

  #stop(r: Reader | undefined): void {
    if (!r) return
    r.stopped = true
    r.child.kill('SIGTERM')
  }

  /** Our prefixes are few (one per rule and decision): each is decoded once. */
  #tag(prefix: string): FlowLogTag | undefined {
    if (!this.#tags.has(prefix)) this.#tags.set(prefix, decodeFlowLogPrefix(prefix))
    return this.#tags.get(prefix)
  }

  #follow(role: 'log' | 'confirmations', cmd: string, args: string[], attempt = 0): Reader {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let setReady = () => undefined as void
    const ready = new Promise<void>((r) => (setReady = r))
    const reader: Reader = { child, stopped: false, ready, setReady }
    let stderr = ''
    child.on('error', (e) => {
      stderr += e.message
      setReady()
    })
    child.stderr?.on('data', (b: Buffer) => {
      const text = b.toString()
      stderr = (stderr + text).slice(-2000)
      // the whole of what it said: the line can come in two pieces
      if (role === 'log' && /listening on/.test(stderr)) {
        this.#state.log = 'running'
        setReady()
      }
      // conntrack: the kernel overran the socket; what was lost cannot be told apart.
      if (/ENOBUFS|lost/i.test(text)) this.#agg?.confirmationsLost(Date.now())
    })
    if (role === 'log') {
      const pcap = new NflogPcapReader()
      child.stdout?.on('data', (chunk: Buffer) => {
        try {
          for (const p of pcap.push(chunk)) {
            const tag = this.#tag(p.prefix)
            if (!tag) continue
            this.#packets++
            this.#agg?.logged(p, tag)
          }
        } catch (e) {
          this.#log({ msg: 'flow log reader wrote something unexpected', error: String(e) })
          child.kill('SIGTERM')
        }
      })
    } else {
      this.#state.confirmations = 'running'
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
        const e = parseConntrackEvent(line)
        if (e?.type === 'NEW') this.#agg?.confirmed(e.tuple, e.timeMs)
      })
    }
    child.on('close', (code, signal) => {
      setReady()
      if (reader.stopped) return
      const why = `${cmd} exited (${signal ?? `code ${code}`}): ${stderr.trim() || 'no message'}`
      this.#state[role] = why
      this.#log({ msg: 'flow reader stopped; restarting', reader: role, reason: why })
      // Whatever it would have confirmed meanwhile is unknown.
      if (role === 'confirmations') this.#agg?.confirmationsLost(Date.now() + GRACE_MS)
      const delay = Math.min(30_000, 500 * 2 ** Math.min(attempt, 6))
      const t = setTimeout(() => {
        if (reader.stopped || this.#level === 'flow_off') return
        const next = this.#follow(role, cmd, args, attempt + 1)
        if (role === 'log') this.#nflog = next
        else this.#conntrack = next
      }, delay)
      this.#timers.push(t)
    })
    return reader
  }

  /**
   * Settles once the log reader the level configured last needs is listening: a change to our
   * rules, which may log at once, waits for it. A reader not listening within `READY_WAIT_MS`
   * is waited for once, not by every change after.
   */
  logReaderReady(): Promise<void> {
    const r = this.#nflog
    if (!r) return Promise.resolve()
    const timer = setTimeout(r.setReady, READY_WAIT_MS)
    return r.ready.finally(() => clearTimeout(timer))
  }

  /**
   * Told whenever the enforcer verified a desired state: the state, if its rules count in the
   * kernel. While it is applying another, the sets of the last verified one are still there.
   */
  countersApplied(countedBy: Desired | undefined): void {
    this.#countedBy = countedBy
    if (countedBy && this.#counting && this.#state.counting === WAITING)
      this.#state.counting = 'running'
  }

  /**
   * Before our rules change to `next`: on iptables a key names no rule (which rule counted it
   * is found from the verified state), so what the rules being left counted is read first. A
   * connection counted between this read and the change is named by the new rules.
   */
  beforeChange(next: Desired): Promise<void> {
    const by = this.#countedBy
    if (!by || by === next || by.backend === 'nftables') return Promise.resolve()
    return this.readCounts()
  }

  /** Writes what was counted to the outbox (each summary with its own uuid). */
  flush(): Promise<void> {
    return this.#write(this.#agg, false)
  }

  async #readAndFlush(): Promise<void> {
    await this.readCounts()
    await this.flush()
  }

  /**
   * Reads what the kernel counted until now into the summaries, one read at a time. A read under
   * way flipped the generation before this call, so what was counted since needs one more read
   * after it (the last read of a level being left, the read before a table replacement); calls
   * meanwhile share that one.
   */
  readCounts(): Promise<void> {
    const agg = this.#agg
    const countedBy = this.#countedBy
    if (!this.#counting || !countedBy || !agg)
      return this.#queued ?? this.#reading ?? Promise.resolve()
    const read = () =>
      (this.#reading = this.#readCounts(agg, countedBy).finally(() => {
        this.#reading = undefined
      }))
    if (!this.#reading) return read()
    this.#queued ??= this.#reading.then(() => {
      this.#queued = undefined
      return read()
    })
    return this.#queued
  }

  async #readCounts(agg: FlowAggregator, countedBy: Desired): Promise<void> {
    if (!this.#run) return
    try {
      const read =
        countedBy.backend === 'nftables'
          ? await readKernelCounts(this.#run)
          : await readIpsetCounts(this.#run, countedBy)
      const now = Date.now()
      let unknown = read.unattributed ?? 0
      for (const e of read.entries) {
        const tag = this.#countTags.get(e.tag)
        if (tag) agg.counted(e, tag, this.#lastRead, now)
        else unknown += e.connections
      }
      this.#lastRead = now
      if (unknown > 0)
        this.#log({
          msg: 'the kernel counted connections under no rule a policy named',
          connections: unknown,
        })
      this.#state.counting = [
        'running',
        ...(read.full.length > 0 ? [`${read.full.join(', ')} full: ${FULL_HINT}`] : []),
        ...((read.unread ?? []).length > 0
          ? [`${read.unread?.join(', ')} in use: read with the next interval`]
          : []),
      ].join('; ')
    } catch (e) {
      this.#state.counting = `cannot read the kernel's counts: ${(e as Error).message}`
      this.#log({ msg: 'cannot read the kernel flow counts', error: (e as Error).message })
    }
  }

  async #write(agg: FlowAggregator | undefined, final: boolean): Promise<void> {
    if (!agg) return
    agg.settle(Date.now(), final)
    const summaries = agg.drain()
    if (summaries.length === 0) return
    this.#summaries += summaries.length
    await this.#outbox
      .append(summaries.map((s) => ({ uuid: randomUUID(), ...s })))
      .catch((e: Error) => this.#log({ msg: 'cannot write flow summaries', error: e.message }))
    this.#onFlushed()
  }

  async #stopReaders(): Promise<void> {
    this.#stop(this.#nflog)
    this.#stop(this.#conntrack)
    this.#nflog = undefined
    this.#conntrack = undefined
    for (const t of this.#timers) clearTimeout(t)
    this.#timers = []
    // The last counts, taken before the rules that count go (started now: before any apply).
    const last = this.readCounts()
    this.#state = {
      log: 'stopped',
      confirmations: 'stopped',
      ...(this.#counting && { counting: 'stopped' }),
    }
    this.#counting = false
    const agg = this.#agg
    this.#agg = undefined
    await last
    await this.#write(agg, true)
  }

  async stop(): Promise<void> {
    this.#closed = true
    this.#level = 'flow_off'
    await this.#stopReaders()
  }
}
