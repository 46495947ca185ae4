/**
 * Time, behind a small interface: the agent's timing logic (back-off, fights, confirm deadlines,
 * quiet periods) runs on the real clock in production and on a fake one in unit tests.
 */

/** A scheduled callback; `cancel` is safe to call more than once, and after it ran. */
export interface Timer {
  cancel(): void
}

export interface Clock {
  /** Monotonic milliseconds, for durations. */
  now(): number
  /** The wall-clock time as ISO 8601, for what people and the server read. */
  isoNow(): string
  /** Runs `f` once after `ms`. A background timer never keeps the process alive. */
  setTimeout(f: () => void, ms: number, opts?: { background?: boolean }): Timer
  /** Runs `f` every `ms`. */
  setInterval(f: () => void, ms: number): Timer
  /** Resolves after `ms`. */
  sleep(ms: number): Promise<void>
}

export const systemClock: Clock = {
  now: () => performance.now(),
  isoNow: () => new Date().toISOString(),
  setTimeout(f, ms, opts) {
    const t = setTimeout(f, ms)
    if (opts?.background) t.unref()
    return { cancel: () => clearTimeout(t) }
  },
  setInterval(f, ms) {
    const t = setInterval(f, ms)
    return { cancel: () => clearInterval(t) }
  },
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
}
