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

/** A monitor line about a table, chain or rule of an iptables-nft filter table: its family. */
const FILTER_CHANGE =
  /^(?:add|create|insert|replace|delete|destroy|flush) (?:table|chain|rule) (ip6?) filter(?: |$)/

/**
 * The iptables filter tables (by family) a change touched, where it touched nothing else: a
 * table, chain or rule of `ip filter` or `ip6 filter` on every line, as iptables-nft's commands
 * print. Undefined for any other change, and for a batch with no lines (what it changed is not
 * known).
 */
export function filterFamiliesChanged(batch: ChangeBatch): ReadonlySet<'ip' | 'ip6'> | undefined {
  const families = new Set<'ip' | 'ip6'>()
  for (const line of batch.lines) {
    const f = FILTER_CHANGE.exec(line)?.[1]
    if (f !== 'ip' && f !== 'ip6') return undefined
    families.add(f)
  }
  return families.size > 0 ? families : undefined
}
