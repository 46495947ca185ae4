import { describe, expect, it } from 'vitest'
import { cappedDetails, EVENT_DETAILS_MAX } from './event-details.js'

describe('cappedDetails', () => {
  it('keeps details within the limit as they are', () => {
    const d = { reason: 'compile_failed', line: 3 }
    expect(cappedDetails(d)).toBe(d)
    const edge = { s: 'x'.repeat(EVENT_DETAILS_MAX - 8) }
    expect(JSON.stringify(edge)).toHaveLength(EVENT_DETAILS_MAX)
    expect(cappedDetails(edge)).toBe(edge)
  })

  it('stores larger details as a marked excerpt of bounded size', () => {
    const big = { stderr: 'é'.repeat(14_000) }
    const got = cappedDetails(big)
    expect(got).toEqual({
      truncated: true,
      bytes: Buffer.byteLength(JSON.stringify(big)),
      excerpt: JSON.stringify(big).slice(0, 1024),
    })
    expect(JSON.stringify(got).length).toBeLessThan(EVENT_DETAILS_MAX)
  })
})
