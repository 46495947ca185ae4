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
