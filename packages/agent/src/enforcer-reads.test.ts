/**
 * Which of the enforcer's reads may be answered from what the dataplane last read or applied
 * (`unlessChanged`): only the first read for a new desired state, when no other trigger met it.
 * Every trigger that says the kernel may have changed reads it, and so does the read that
 * verifies an apply.
 */
import { describe, expect, it } from 'vitest'
import { desiredOf } from './dataplane-fake.fixture.js'
import { fakeEnforcer } from './enforcer-fake.fixture.js'

describe('enforcer: reads that may stand on what the dataplane knows', () => {
  it('a new desired state reads unless changed; the read verifying its apply reads', async () => {
    const { dp, enforcer } = fakeEnforcer()
    enforcer.setDesired(desiredOf(1, { peer: '198.18.0.1/32', port: 80 }))
    await enforcer.settled()
    enforcer.setDesired(desiredOf(2, { peer: '198.18.0.2/32', port: 80 }))
    await enforcer.settled()
    expect(dp.unlessChanged).toEqual([true, false, true, false])
    expect(enforcer.status.applied?.version).toBe(2)
  })

  it('every other trigger reads the kernel', async () => {
    const { dp, enforcer } = fakeEnforcer()
    enforcer.setDesired(desiredOf(1, { peer: '198.18.0.1/32', port: 80 }))
    await enforcer.settled()
    dp.unlessChanged.length = 0
    for (const reason of ['backstop', 'poll', 'kernel change events were lost']) {
      enforcer.trigger(reason)
      await enforcer.settled()
    }
    expect(dp.unlessChanged).toEqual([false, false, false])
  })

  it('a new desired state that meets another trigger reads the kernel', async () => {
    const { dp, enforcer } = fakeEnforcer()
    enforcer.setDesired(desiredOf(1, { peer: '198.18.0.1/32', port: 80 }))
    await enforcer.settled()
    dp.unlessChanged.length = 0
    // Either order: the trigger that says the kernel may have changed wins.
    enforcer.trigger('kernel change events were lost')
    enforcer.setDesired(desiredOf(2, { peer: '198.18.0.2/32', port: 80 }))
    await enforcer.settled()
    enforcer.setDesired(desiredOf(3, { peer: '198.18.0.3/32', port: 80 }))
    enforcer.trigger('backstop')
    await enforcer.settled()
    expect(dp.unlessChanged).toEqual([false, false, false, false])
    expect(enforcer.status.applied?.version).toBe(3)
  })
})
