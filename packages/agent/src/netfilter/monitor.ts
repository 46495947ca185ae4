import { StringDecoder } from 'node:string_decoder'
import type { ChangeBatch, MonitorEvent } from '../dataplane.js'
import { batchLines } from '../dataplane.js'
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
  /** The lines of the transaction under way, in the pieces they came in. */
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
    this.#pending = []
    const decoder = new StringDecoder('utf8')
    this.#child = this.o.start('nft', ['monitor'], {
      // A character split between two chunks is put together again.
      stdout: (chunk) => this.#take(this.#partial + decoder.write(chunk)),
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

  /**
   * Takes the whole lines of `text`, keeping the partial last one. Only nft's own lines, which
   * begin with `#`, end a transaction or say events were lost; the change lines between them
   * are kept as they came, not split: a commit of 100,000 set elements prints 100,000 of them.
   */
  #take(text: string): void {
    const end = text.lastIndexOf('\n')
    this.#partial = text.slice(end + 1)
    let from = 0
    for (let at = nftLineAt(text, 0); at >= 0 && at <= end; at = nftLineAt(text, from)) {
      const lineEnd = text.indexOf('\n', at)
      if (at > from) this.#pending.push(text.slice(from, at))
      this.#comment(text.slice(at, lineEnd).replace(/\r$/, ''))
      from = lineEnd + 1
    }
    if (from <= end) this.#pending.push(text.slice(from, end + 1))
  }

  #comment(line: string): void {
    if (LOST.test(line)) {
      this.#pending = []
      this.o.onEvent({ kind: 'lost' })
      return
    }
    const g = GENERATION.exec(line)
    if (!g) {
      this.#pending.push(`${line}\n`)
      return
    }
    const batch: ChangeBatch = {
      text: this.#pending.join(''),
      pid: Number(g[1]),
      comm: g[2] ?? '',
      at: this.o.now(),
    }
    this.#pending = []
    this.o.onEvent({ kind: 'change', batch })
  }

  stop(): void {
    this.#stopped = true
    this.#child?.kill()
    this.#child = undefined
  }
}

/** Where the next line that begins with `#` (nft's own) begins, from the line start `from`. */
function nftLineAt(text: string, from: number): number {
  if (text[from] === '#') return from
  const i = text.indexOf('\n#', from)
  return i < 0 ? -1 : i + 1
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
  for (const line of batchLines(batch)) {
    const f = FILTER_CHANGE.exec(line)?.[1]
    if (f !== 'ip' && f !== 'ip6') return undefined
    families.add(f)
  }
  return families.size > 0 ? families : undefined
}
