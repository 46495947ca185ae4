import { describe, expect, it } from 'vitest'
import { FakeClock } from './clock-fake.fixture.js'
import type { EnforcementStatus } from './enforcer.js'
import type { AgentEvent } from './events.js'
import { PolicyRefusals } from './policy-refusals.js'

const healthy: EnforcementStatus = {
  health: 'healthy',
  tampering: { condition: 'none', repairs: 0 },
}

describe('PolicyRefusals', () => {
  it('reports each reason once however often it is refused again, and is unhealthy meanwhile', () => {
    const events: AgentEvent[] = []
    const r = new PolicyRefusals({ clock: new FakeClock(), onEvent: (e) => events.push(e) })
    expect(r.health(healthy)).toBe(healthy)
    expect(r.refused('offered', 'bad policy')).toBe(true)
    for (let i = 0; i < 5; i++) expect(r.refused('offered', 'bad policy')).toBe(false)
    expect(events).toHaveLength(1)
    expect(events[0]).toMatchObject({
      event_type: 'agent.health',
      severity: 'err',
      details: { reason: 'bad policy', policy_refused: 'offered', previous_ruleset_kept: true },
    })
    expect(r.health(healthy)).toEqual({ ...healthy, health: 'unhealthy', reason: 'bad policy' })
    // the enforced policy's refusal is kept apart: clearing one leaves the other
    r.refused('enforced', 'name did not resolve')
    expect(events).toHaveLength(2)
    expect(r.reason).toBe('bad policy')
    expect(r.cleared('offered')).toBe(true)
    expect(r.reason).toBe('name did not resolve')
    expect(r.cleared('enforced')).toBe(true)
    expect(r.health(healthy)).toBe(healthy)
    // refused again after it cleared: news again
    expect(r.refused('offered', 'bad policy')).toBe(true)
    expect(events).toHaveLength(3)
  })

  it('bounds the reason it reports', () => {
    const events: AgentEvent[] = []
    const r = new PolicyRefusals({ clock: new FakeClock(), onEvent: (e) => events.push(e) })
    r.refused('offered', 'x'.repeat(100_000))
    expect(String(events[0]?.details.reason).length).toBe(1003)
  })
})
