/**
 * One line for the first of a run of like failures, then one line of how many followed per
 * summary period: when the store is away every request fails the same way, and 25,000 agents
 * retrying must not write 25,000 lines a minute (a log that floods hides the line that matters,
 * and fills the disk the database may share). Pure: the caller calls `summary()` on a timer.
 */
export class LogRepeats {
  #open = false
  #held = 0
  #last = ''

  /** True when this failure starts a run and should be logged now; otherwise it is counted. */
  first(message: string): boolean {
    if (!this.#open) {
      this.#open = true
      return true
    }
    this.#held++
    this.#last = message
    return false
  }

  /**
   * How many failures were held back since the last call, and the latest of them; undefined
   * when none were, which also ends the run (the next failure is logged at once).
   */
  summary(): { count: number; last: string } | undefined {
    if (this.#held === 0) {
      this.#open = false
      return undefined
    }
    const s = { count: this.#held, last: this.#last }
    this.#held = 0
    return s
  }
}
