import type { FlowSummaryUpload } from '@palisade/model'
import { describe, expect, it } from 'vitest'
import { flowIntake } from './flow-intake.js'

const NOW = new Date('2026-11-30T12:00:00.000Z')
const flow = (src: string, dst: string, first: string, last: string): FlowSummaryUpload => ({
  uuid: `${src}-${dst}-${first}`,
  direction: 'inbound',
  src_ip: src,
  dst_ip: dst,
  port: 22,
  proto: 6,
  policy_decision: 'allowed',
  rule_href: null,
  num_connections: 1,
  first_seen: first,
  last_seen: last,
  dropped_downstream: false,
})

describe('flow intake', () => {
  const own = new Set(['198.18.0.10', 'fd00::10'])
  it.each([
    ['inbound to us', '198.18.0.1', '198.18.0.10', true],
    ['outbound from us', '198.18.0.10', '198.18.0.1', true],
    ['IPv6 to us', 'fd00::1', 'fd00::10', true],
    ['between two other hosts', '198.18.0.1', '198.18.0.2', false],
    ['a neighbour of ours', '198.18.0.11', '198.18.0.1', false],
  ])('%s: kept %s', (_, src, dst, kept) => {
    const r = flowIntake([flow(src, dst, '2026-11-30T11:00:00Z', '2026-11-30T11:00:05Z')], own, NOW)
    expect([r.kept.length, r.refused.length]).toEqual(kept ? [1, 0] : [0, 1])
  })

  it.each([
    [
      '2026-11-30T11:00:00Z',
      '2026-11-30T11:00:05Z',
      '2026-11-30T11:00:00.000Z',
      '2026-11-30T11:00:05.000Z',
    ],
    ['2026-11-30T11:00:00Z', '2099-01-01T00:00:00Z', '2026-11-30T11:00:00.000Z', NOW.toISOString()],
    ['2099-01-01T00:00:00Z', '2099-01-01T00:00:00Z', NOW.toISOString(), NOW.toISOString()],
  ])('dates %s..%s as %s..%s', (first, last, wantFirst, wantLast) => {
    const [f] = flowIntake([flow('198.18.0.1', '198.18.0.10', first, last)], own, NOW).kept
    expect([f?.first_seen, f?.last_seen]).toEqual([wantFirst, wantLast])
  })
})
