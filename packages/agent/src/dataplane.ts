/**
 * The enforcer's only way to the kernel: read our objects back, apply a desired state, and
 * follow the kernel's change events. The kernel implementation runs the real tools
 * (dataplane-kernel.ts); unit tests use an in-memory one.
 */
import type { Backend, Desired, Plan, Ruleset } from '@palisade/firewall'

/** One committed nf_tables transaction, as the kernel reports it. */
export interface ChangeBatch {
  /**
   * What it changed, a line each, as the monitor printed it (read it with batchLines): a commit
   * of 100,000 set elements is 5 MB of text, which only another process's change is looked into.
   */
  readonly text: string
  /** The process that committed it (`# new generation N by process PID (COMM)`). */
  readonly pid?: number
  readonly comm?: string
  /** When it was seen, on the enforcer's clock. */
  readonly at: number
}

/**
 * A batch's lines, without blank ones, as far as the caller reads them: a look at the first few
 * does not split the rest.
 */
export function* batchLines(b: ChangeBatch): Generator<string> {
  const { text } = b
  for (let from = 0; from < text.length;) {
    const nl = text.indexOf('\n', from)
    const end = nl < 0 ? text.length : nl
    const line = text.slice(from, text[end - 1] === '\r' ? end - 1 : end)
    if (line.trim() !== '') yield line
    from = end + 1
  }
}

export type MonitorEvent =
  | { readonly kind: 'change'; readonly batch: ChangeBatch }
  /** The kernel dropped events (netlink overrun): only a full read-back can tell what changed. */
  | { readonly kind: 'lost' }
  | { readonly kind: 'exited'; readonly reason: string }

export interface Dataplane {
  readonly backend: Backend
  /**
   * Our objects as the kernel holds them; `elements: false` leaves set contents out. Right
   * after an apply, what that apply verified may answer instead; with `unlessChanged`, what the
   * last read or apply found answers as long as nothing shows a change since (see
   * KernelDataplane.read): the read for a new desired state, when nothing said the kernel moved.
   * When `signal` aborts, the read stops (its tools are ended) and rejects.
   */
  read(opts: {
    readonly elements: boolean
    readonly unlessChanged?: boolean
    readonly signal?: AbortSignal
  }): Promise<Ruleset>
  /**
   * Brings the kernel from `actual` (read just before) to `desired`, one atomic transaction per
   * table; returns the plan it carried out.
   */
  apply(desired: Desired, actual: Ruleset, opts: { readonly modeChanged: boolean }): Promise<Plan>
  /**
   * A cheap look at whether our objects changed since the last read began, where changes send
   * no events (iptables-legacy rules, ipsets): whether the rules and whether set contents may
   * have. Undefined when it cannot tell (then only a read can).
   */
  changed(): Promise<{ readonly rules: boolean; readonly elements: boolean } | undefined>
  /** Follows change events until stopped; they are hints, never the state. */
  watch(onEvent: (e: MonitorEvent) => void): { stop(): void }
  /** Whether a change was committed by this dataplane's own commands (not tampering). */
  isOwn(batch: ChangeBatch): boolean
  /** Ends the tools it keeps running (the kernel stays as it is); later applies start theirs. */
  close(): void
}
