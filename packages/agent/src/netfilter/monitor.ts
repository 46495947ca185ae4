import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'

/** One committed nf_tables transaction, as `nft monitor` reports it. */
export interface ChangeBatch {
  readonly lines: readonly string[]
  /** The process that committed it, from the `# new generation N by process PID (COMM)` line. */
  readonly pid?: number
  readonly comm?: string
  readonly at: number
}

export type MonitorEvent =
  | { readonly kind: 'change'; readonly batch: ChangeBatch }
  /** The kernel dropped events (netlink overrun): only a full read-back can tell what changed. */
  | { readonly kind: 'lost' }
  | { readonly kind: 'exited'; readonly reason: string }

const GENERATION = /^# new generation \d+ by process (\d+) \(([^)]*)\)/

/**
 * Follows `nft monitor` (nf_tables changes, which includes iptables-nft) and groups its lines
 * into committed transactions with the process that made them. Events are hints: the reader of
 * these must re-read the ruleset, never trust the lines as the state.
 */
export class NftMonitor {
  #child: ChildProcess | undefined
  #pending: string[] = []
  #stopped = false

  constructor(private readonly onEvent: (e: MonitorEvent) => void) {}

  start(): void {
    this.#stopped = false
    const child = spawn('nft', ['monitor'], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.#child = child
    child.on('error', (e) =>
      this.onEvent({ kind: 'exited', reason: `cannot run nft monitor: ${e.message}` }),
    )
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
    lines.on('line', (line) => this.#line(line))
    child.stderr?.on('data', (b: Buffer) => {
      if (/lost some netlink events/i.test(b.toString())) this.onEvent({ kind: 'lost' })
    })
    child.on('close', (code, signal) => {
      if (!this.#stopped)
        this.onEvent({ kind: 'exited', reason: `nft monitor exited (${signal ?? `code ${code}`})` })
    })
  }

  #line(line: string): void {
    if (/lost some netlink events/i.test(line)) {
      this.#pending = []
      this.onEvent({ kind: 'lost' })
      return
    }
    const g = GENERATION.exec(line)
    if (g) {
      const batch: ChangeBatch = {
        lines: this.#pending,
        pid: Number(g[1]),
        comm: g[2] ?? '',
        at: performance.now(),
      }
      this.#pending = []
      this.onEvent({ kind: 'change', batch })
      return
    }
    if (line.trim() !== '') this.#pending.push(line)
  }

  stop(): void {
    this.#stopped = true
    this.#child?.kill('SIGTERM')
    this.#child = undefined
  }
}
