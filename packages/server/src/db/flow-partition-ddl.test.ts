import { describe, expect, it } from 'vitest'
import { dayOf, dayOfPartition, daysFrom, nextDay, partitionName } from './flow-partition-ddl.js'

describe('flow partition names and days', () => {
  it.each([
    ['2026-12-01', '2026-12-02'],
    ['2026-12-31', '2027-01-01'],
    ['2028-02-28', '2028-02-29'],
    ['2027-02-28', '2027-03-01'],
  ])('the day after %s is %s', (day, next) => expect(nextDay(day)).toBe(next))

  it('names a day and reads the day back', () => {
    expect(partitionName('2026-12-01')).toBe('flow_summaries_d20261201')
    expect(dayOfPartition('flow_summaries_d20261201')).toBe('2026-12-01')
    expect(dayOfPartition('flow_summaries_default')).toBeUndefined()
    expect(() => partitionName("2026-12-01'; drop")).toThrow(/not a day/)
  })

  it('reads the UTC day of a time', () => {
    expect(dayOf('2026-11-30T23:59:59.999Z')).toBe('2026-11-30')
    expect(dayOf(new Date('2026-12-01T00:00:00.000Z'))).toBe('2026-12-01')
  })

  it('lists days ahead across a year end', () => {
    expect(daysFrom('2026-12-30', 3)).toEqual(['2026-12-30', '2026-12-31', '2027-01-01'])
  })
})
