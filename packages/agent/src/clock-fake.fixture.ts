import type { Clock, Timer } from './clock.js'

interface Pending {
  at: number
  seq: number
  readonly f: () => void
  readonly every?: number
  cancelled: boolean
}

/** Lets every promise chain that is waiting on a settled promise run (no real I/O is involved). */
export const drain = () => new Promise<void>((resolve) => setImmediate(resolve))

/**
 * A clock for unit tests: time moves only when the test says so, and timers fire in order of
 * their due time (then of their creation), each followed by whatever async work it started.
 */
export class FakeClock implements Clock {
  #now = 0
  #seq = 0
  #timers: Pending[] = []
  /** The wall clock at `now() === 0`. */
  readonly #epoch = Date.parse('2025-01-01T00:00:00.000Z')

  now(): number {
    return this.#now
  }

  isoNow(): string {
    return new Date(this.#epoch + this.#now).toISOString()
  }

  setTimeout(f: () => void, ms: number): Timer {
    return this.#add(f, ms)
  }

  setInterval(f: () => void, ms: number): Timer {
    return this.#add(f, ms, Math.max(1, ms))
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.#add(resolve, ms))
  }

  #add(f: () => void, ms: number, every?: number): Timer {
    const p: Pending = {
      at: this.#now + Math.max(0, ms),
      seq: ++this.#seq,
      f,
      ...(every !== undefined && { every }),
      cancelled: false,
    }
    this.#timers.push(p)
    return { cancel: () => void (p.cancelled = true) }
  }

  /** Timers not cancelled, for tests that check nothing is left behind. */
  get pending(): number {
    return this.#timers.filter((t) => !t.cancelled).length
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms
    await drain()
    for (;;) {
      this.#timers = this.#timers.filter((t) => !t.cancelled)
      const next = this.#timers
        .filter((t) => t.at <= end)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0]
      if (!next) break
      this.#now = next.at
      if (next.every === undefined) next.cancelled = true
      else {
        next.at += next.every
        next.seq = ++this.#seq
      }
      next.f()
      await drain()
    }
    this.#now = end
  }
}
