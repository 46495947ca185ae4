import { hostPolicyFromLocalFile } from '@palisade/model'
import { describe, expect, it } from 'vitest'
import { FakeClock } from './clock-fake.fixture.js'
import type { Candidate, KnownGood } from './commit-confirm.js'
import { CommitConfirm } from './commit-confirm.js'

const candidate = (version: number): Candidate => ({
  policy: hostPolicyFromLocalFile({ version }),
  hash: `h${version}`,
})

/** `confirmMs` null: a source that confirms by itself (a file). */
function setup(confirmMs: number | null = 3000) {
  const clock = new FakeClock()
  const log = {
    enforced: [] as string[],
    saved: [] as KnownGood[],
    awaiting: 0,
    rolledBack: [] as string[],
  }
  const cc = new CommitConfirm({
    clock,
    ...(confirmMs !== null && { confirmMs }),
    enforce: (c) => log.enforced.push(c.hash ?? `v${c.policy.version}`),
    save: (g) => log.saved.push(g),
    awaiting: () => log.awaiting++,
    rolledBack: (r) => log.rolledBack.push(r),
  })
  /** The server's policy `c` is offered, and the kernel then holds it. */
  const apply = (c: Candidate) => {
    expect(cc.offer(c, 'server')).toBe(true)
    cc.verified('exclusive')
  }
  return { clock, cc, log, apply }
}

describe('commit-confirm', () => {
  it('holds a server policy as applied until the server is reached, then keeps it as known-good', async () => {
    const { clock, cc, log, apply } = setup()
    const v1 = candidate(1)
    apply(v1)
    expect(log.enforced).toEqual(['h1'])
    expect(cc.confirmation).toMatchObject({ state: 'awaiting', candidate: v1 })
    expect(cc.applied).toBe(v1)
    expect(log.awaiting).toBe(1)
    expect(log.saved).toEqual([])
    cc.reached(v1, 'exclusive')
    expect(cc.confirmation).toEqual({
      state: 'confirmed',
      good: { ...v1, appliedMode: 'exclusive' },
    })
    expect(log.saved).toEqual([{ ...v1, appliedMode: 'exclusive' }])
    await clock.advance(10_000)
    expect(log.rolledBack).toEqual([])
    expect(clock.pending).toBe(0)
  })

  it('rolls back to the last confirmed policy at the deadline, and refuses that policy after', async () => {
    const { clock, cc, log, apply } = setup()
    const v1 = candidate(1)
    apply(v1)
    cc.reached(v1, 'exclusive')
    const v2 = candidate(2)
    apply(v2)
    await clock.advance(2999)
    expect(log.rolledBack).toEqual([])
    await clock.advance(1)
    expect(log.rolledBack).toEqual([
      'could not reach the policy server within 3000 ms after applying policy version 2; rolled back to the last confirmed policy',
    ])
    expect(log.enforced).toEqual(['h1', 'h2', 'h1'])
    expect(cc.current).toMatchObject({ hash: 'h1' })
    expect(cc.source).toBe('last confirmed policy (rolled back)')
    expect(cc.confirmation).toMatchObject({ state: 'confirmed', good: { hash: 'h1' } })
    // the refused policy is not applied again; a newer one is
    expect(cc.offer(candidate(2), 'server')).toBe(false)
    expect(log.enforced).toEqual(['h1', 'h2', 'h1'])
    expect(cc.offer(candidate(3), 'server')).toBe(true)
    expect(log.enforced).toEqual(['h1', 'h2', 'h1', 'h3'])
    // confirming the known-good policy again writes nothing new
    expect(log.saved.map((g) => g.hash)).toEqual(['h1'])
  })

  it('confirms only the policy a delivered report named', async () => {
    const { clock, cc, log, apply } = setup()
    const v1 = candidate(1)
    apply(v1)
    const reportedBefore = cc.applied
    const v2 = candidate(2)
    apply(v2)
    // a report built while v1 was applied reached the server after v2 was applied
    cc.reached(reportedBefore, 'exclusive')
    expect(cc.confirmation).toMatchObject({ state: 'awaiting', candidate: v2 })
    // the deadline started again for v2; with nothing confirmed there is nothing to go back to
    await clock.advance(3000)
    expect(log.rolledBack).toHaveLength(1)
    expect(log.enforced).toEqual(['h1', 'h2'])
    expect(cc.confirmation).toEqual({ state: 'confirmed', good: undefined })
  })

  it('after a restart, enforces its known-good policy without waiting for the server again', async () => {
    const { clock, cc, log, apply } = setup()
    const known: KnownGood = { ...candidate(4), appliedMode: 'exclusive' }
    cc.restore(known)
    expect(cc.current).toBe(known)
    expect(cc.source).toBe('last known-good copy')
    cc.verified('exclusive')
    expect(cc.confirmation).toEqual({ state: 'confirmed', good: known })
    expect(log.awaiting).toBe(0)
    expect(log.saved).toEqual([])
    // the server's next policy is held to the deadline, and the known-good one comes back
    apply(candidate(5))
    await clock.advance(3000)
    expect(cc.current).toBe(known)
    expect(log.enforced).toEqual(['h5', 'h4'])
  })

  it('keeps a policy from a file as known-good once the kernel holds it, saving each version once', () => {
    const { cc, log } = setup(null)
    const file = { policy: hostPolicyFromLocalFile({ version: 7 }) }
    cc.offer(file, 'file policy.json')
    cc.verified('exclusive')
    cc.verified('exclusive')
    expect(cc.confirmation).toEqual({
      state: 'confirmed',
      good: { ...file, appliedMode: 'exclusive' },
    })
    expect(log.saved).toEqual([{ ...file, appliedMode: 'exclusive' }])
    expect(log.awaiting).toBe(0)
  })
})
