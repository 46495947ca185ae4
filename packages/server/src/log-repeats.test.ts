import { describe, expect, it } from 'vitest'
import { LogRepeats } from './log-repeats.js'

describe('LogRepeats', () => {
  it('logs the first failure of a run at once and counts the rest for the summary', () => {
    const r = new LogRepeats()
    expect(r.first('a')).toBe(true)
    expect([r.first('b'), r.first('c'), r.first('d')]).toEqual([false, false, false])
    expect(r.summary()).toEqual({ count: 3, last: 'd' })
  })

  it('keeps counting while failures go on, one summary per period', () => {
    const r = new LogRepeats()
    r.first('a')
    r.first('b')
    expect(r.summary()).toEqual({ count: 1, last: 'b' })
    expect(r.first('c')).toBe(false)
    expect(r.summary()).toEqual({ count: 1, last: 'c' })
  })

  it('ends the run after a quiet period, so the next failure is logged at once', () => {
    const r = new LogRepeats()
    r.first('a')
    expect(r.summary()).toBeUndefined()
    expect(r.first('b')).toBe(true)
  })

  it('says nothing when nothing failed', () => {
    expect(new LogRepeats().summary()).toBeUndefined()
  })
})
