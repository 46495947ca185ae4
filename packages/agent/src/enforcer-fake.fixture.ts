/**
 * An enforcer over the in-memory kernel and a fake clock, started, as the enforcer's unit tests
 * use it: no polling (the tests move the clock and send the events themselves).
 */
import type { Backend } from '@palisade/firewall'
import { diff, planApply } from '@palisade/firewall'
import { FakeClock } from './clock-fake.fixture.js'
import { desiredOf, FakeDataplane } from './dataplane-fake.fixture.js'
import type { EnforcerOptions } from './enforcer.js'
import { Enforcer } from './enforcer.js'
import type { AgentEvent } from './events.js'

export function fakeEnforcer(o: Partial<EnforcerOptions> & { backend?: Backend } = {}) {
  const clock = new FakeClock()
  const dp = new FakeDataplane(o.backend ?? 'nftables', clock)
  const events: AgentEvent[] = []
  const enforcer = new Enforcer({
    dataplane: dp,
    clock,
    pollMs: null,
    backstopMs: 30_000,
    fight: { windowMs: 10_000, threshold: 3 },
    watchEvents: true,
    onEvent: (e) => events.push(e),
    onStatus: () => undefined,
    ...o,
  })
  enforcer.start()
  const desired = desiredOf(1, { backend: dp.backend })
  return {
    clock,
    dp,
    enforcer,
    desired,
    /** Whether the fake kernel holds exactly what we want. */
    inSync: () => Promise.resolve(planApply(desired, diff(desired, dp.own)).kind === 'none'),
    of: (type: AgentEvent['event_type']) => events.filter((e) => e.event_type === type),
    tick: (ms = 0) => clock.advance(ms),
  }
}
