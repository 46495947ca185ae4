import { PerformanceObserver } from 'node:perf_hooks'

/** Median and percentiles of a list of samples (milliseconds), rounded for printing. */
export function summary(samples: readonly number[]): {
  n: number
  p50: number
  p99: number
  min: number
  max: number
} {
  const s = [...samples].sort((a, b) => a - b)
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN
  const r = (x: number) => +x.toFixed(2)
  return {
    n: s.length,
    p50: r(at(0.5)),
    p99: r(at(0.99)),
    min: r(s[0] ?? NaN),
    max: r(s[s.length - 1] ?? NaN),
  }
}

export const median = (samples: readonly number[]) => summary(samples).p50

export async function timed<T>(f: () => Promise<T> | T): Promise<{ ms: number; value: T }> {
  const t0 = performance.now()
  const value = await f()
  return { ms: performance.now() - t0, value }
}

/**
 * The median of several runs' figure, with the spread: a single run on a shared machine can
 * flatter or slander, and a reader should see by how much the runs disagreed.
 */
export function spread(values: readonly number[]): {
  median: number
  min: number
  max: number
  runs: number
} {
  const { p50, min, max, n } = summary(values)
  return { median: p50, min, max, runs: n }
}

/**
 * The garbage collector's pauses in this process from now until `stop`, to say how much of a
 * timed window was the collector's (it pauses where the heap fills, not where garbage was made).
 */
export function gcPauses() {
  const pauses: { readonly at: number; readonly ms: number }[] = []
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) pauses.push({ at: e.startTime, ms: e.duration })
  })
  observer.observe({ entryTypes: ['gc'] })
  return {
    /** The pauses that began between `from` and `to` (performance.now() times), in ms. */
    async within(from: number, to: number): Promise<number> {
      // Entries reach the observer after the task that saw them ends.
      await new Promise((r) => setTimeout(r, 0))
      return pauses.filter((p) => p.at >= from && p.at < to).reduce((s, p) => s + p.ms, 0)
    },
    stop: () => observer.disconnect(),
  }
}
