import { tooMany } from './errors.js'

const WINDOW_MS = 60_000

/**
 * At most `perMinute` calls per key (an API user, a client address) in each one-minute window;
 * past that, a 429 with `Retry-After`. Ended windows are dropped, so the keys seen do not pile up.
 */
export class PerMinuteLimit {
  readonly #windows = new Map<string, { start: number; count: number }>()
  #swept = 0

  constructor(private readonly perMinute: number) {}

  take(key: string): void {
    const t = Date.now()
    if (t - this.#swept > WINDOW_MS) {
      for (const [k, w] of this.#windows) if (t - w.start > WINDOW_MS) this.#windows.delete(k)
      this.#swept = t
    }
    const w = this.#windows.get(key)
    if (!w || t - w.start > WINDOW_MS) this.#windows.set(key, { start: t, count: 1 })
    else if (++w.count > this.perMinute) throw tooMany(Math.ceil((w.start + WINDOW_MS - t) / 1000))
  }
}
