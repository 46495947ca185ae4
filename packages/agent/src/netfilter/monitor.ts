import type { ChangeBatch, MonitorEvent } from '../dataplane.js'
import type { ProcessStarter } from '../exec.js'

const GENERATION = /^# new generation \d+ by process (\d+) \(([^)]*)\)/
const LOST = /lost some netlink events/i

/**
 * Follows `nft monitor` (nf_tables changes, which includes iptables-nft) and groups its lines
 * into committed transactions with the process that made them. Events are hints: the reader of
 * these must re-read the ruleset, never trust the lines as the state.
 */
export class NftMonitor {
  #child: { kill(): void } | undefined
  #pending: string[] = []
  #partial = ''
  #stopped = false

  constructor(
    private readonly o: {
      readonly start: ProcessStarter
      readonly now: () => number
      readonly onEvent: (e: MonitorEvent) => void
    },
  ) {}

  start(): void {
    this.#stopped = false
    this.#partial = ''
    this.#child = this.o.start('nft', ['monitor'], {
      stdout: (chunk) => {
        const lines = (this.#partial + chunk.toString()).split('\n')
        this.#partial = lines.pop() ?? ''
        for (const line of lines) this.#line(line.replace(/\r$/, ''))
      },
      stderr: (chunk) => {
        if (LOST.test(chunk.toString())) this.o.onEvent({ kind: 'lost' })
      },
      error: (e) =>
        this.o.onEvent({ kind: 'exited', reason: `cannot run nft monitor: ${e.message}` }),
      close: (code, signal) => {
        if (!this.#stopped)
          this.o.onEvent({
            kind: 'exited',
            reason: `nft monitor exited (${signal ?? `code ${code}`})`,
          })
      },
    })
  }

  #line(line: string): void {
    if (LOST.test(line)) {
      this.#pending = []
      this.o.onEvent({ kind: 'lost' })
      return
    }
    const g = GENERATION.exec(line)
    if (g) {
      const batch: ChangeBatch = {
        lines: this.#pending,
        pid: Number(g[1]),
        comm: g[2] ?? '',
        at: this.o.now(),
      }
      this.#pending = []
      this.o.onEvent({ kind: 'change', batch })
      return
    }
    if (line.trim() !== '') this.#pending.push(line)
  }

  stop(): void {
    this.#stopped = true
    this.#child?.kill()
    this.#child = undefined
  }
}
