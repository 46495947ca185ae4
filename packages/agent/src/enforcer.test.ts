/**
 * The enforcer's behaviour on an in-memory kernel and a fake clock: tampering episodes, fights,
 * verify retries, failures and lost events, each in milliseconds and without root. The kernel
 * tests (test/kernel/agent-*.test.ts) prove the same on the real kernel.
 */
import type { Backend, Desired, Ruleset } from '@palisade/firewall'
import { diff, planApply } from '@palisade/firewall'
import { describe, expect, it } from 'vitest'
import {
  deleteFirstRule,
  desiredOf,
  editChain,
  OWN_PID,
  TAMPERER,
} from './dataplane-fake.fixture.js'
import type { FakeDataplane } from './dataplane-fake.fixture.js'
import type { EnforcementStatus } from './enforcer.js'
import { fakeEnforcer } from './enforcer-fake.fixture.js'

/** Another process removes our rules: our first input rule (nftables), our hooks (iptables). */
const removeOurs = (backend: Backend) =>
  backend === 'nftables'
    ? deleteFirstRule
    : editChain('INPUT', (rules) => rules.filter((r) => r.verdict?.kind !== 'jump'))

/** Another process empties every set of ours. */
const emptySets = (rs: Ruleset): Ruleset => ({
  ...rs,
  tables: rs.tables.map((t) => ({ ...t, sets: t.sets.map((s) => ({ ...s, elements: [] })) })),
  ipsets: rs.ipsets.map((s) => ({ ...s, elements: [] })),
})

/** Whether the kernel holds our sets' contents as desired (rules aside). */
const setsWhole = (dp: FakeDataplane, desired: Desired) =>
  !diff(desired, dp.own).some((d) => d.kind === 'set_elements')

/** Each time our rules went missing after `from`, for how long (Infinity: still missing). */
function gaps(dp: FakeDataplane, desired: Desired, from: number): number[] {
  const out: number[] = []
  let since: number | undefined
  for (const { at, own } of dp.history.filter((h) => h.at >= from)) {
    const whole = planApply(desired, diff(desired, own)).kind === 'none'
    if (!whole) since ??= at
    else if (since !== undefined) {
      out.push(at - since)
      since = undefined
    }
  }
  return since === undefined ? out : [...out, Infinity]
}

describe('enforcer: what must run before our rules change', () => {
  it('changes nothing until beforeReconcile settles, and nothing at all once stopped meanwhile', async () => {
    const gates: (() => void)[] = []
    const gated = () => new Promise<void>((r) => gates.push(r))
    const t = fakeEnforcer({ beforeReconcile: gated })
    t.enforcer.setDesired(t.desired, { repair: true })
    await t.tick(1000)
    expect(t.dp.calls.applies).toBe(0)
    expect(gates).toHaveLength(1)
    gates.shift()?.()
    await t.tick()
    expect(t.dp.calls.applies).toBe(1)
    expect(await t.inSync()).toBe(true)

    // a stop while a change waits (an unpair restoring the firewall): the change never comes
    const u = fakeEnforcer({ beforeReconcile: gated })
    u.enforcer.setDesired(u.desired, { repair: true })
    await u.tick()
    u.enforcer.stop()
    gates.shift()?.()
    await u.tick(1000)
    expect(u.dp.calls.applies).toBe(0)
  })
})

describe('enforcer (in-memory kernel, fake clock)', () => {
  it('without repair (suspended) applies once, then leaves what others change', async () => {
    const t = fakeEnforcer()
    t.enforcer.setDesired(t.desired, { repair: false })
    await t.tick()
    expect(await t.inSync()).toBe(true)
    const applies = t.dp.calls.applies
    t.dp.tamper(deleteFirstRule)
    await t.tick(60_000)
    expect(t.dp.calls.applies).toBe(applies)
    expect(await t.inSync()).toBe(false)
    expect(t.of('agent.tampering')).toEqual([])
    expect(t.enforcer.status.tampering.repairs).toBe(0)
    // repairing again once asked to
    t.enforcer.setDesired(t.desired)
    await t.tick()
    expect(await t.inSync()).toBe(true)
    expect(t.dp.calls.applies).toBe(applies + 1)
  })

  it('applies, verifies by reading back, and is not woken by its own changes', async () => {
    const t = fakeEnforcer()
    t.enforcer.setDesired(t.desired)
    await t.tick()
    expect(t.enforcer.status).toMatchObject({
      health: 'healthy',
      applied: { version: 1, plan: 'full', at: '2025-01-01T00:00:00.000Z' },
    })
    expect(t.enforcer.verified).toBe(t.desired)
    expect(await t.inSync()).toBe(true)
    // one read, one apply, one read back; our own change event wakes nothing
    expect(t.dp.calls).toMatchObject({ reads: 2, applies: 1 })
    await t.tick(1000)
    expect(t.dp.calls).toMatchObject({ reads: 2, applies: 1 })
    expect(t.of('agent.tampering')).toEqual([])
  })

  it('repairs each tampering, one event a repair until a fight, then one ongoing condition, ended after quiet', async () => {
    const t = fakeEnforcer()
    t.enforcer.setDesired(t.desired)
    await t.tick()
    for (let i = 1; i <= 2; i++) {
      t.dp.tamper(deleteFirstRule)
      await t.tick()
      expect(await t.inSync(), `repair ${i}`).toBe(true)
      expect(t.of('agent.tampering')).toHaveLength(i)
      await t.tick(1000)
    }
    expect(t.of('agent.tampering')[0]?.details).toMatchObject({
      condition: 'repaired',
      repaired: true,
      trigger: 'kernel change event',
      process: TAMPERER,
      kernel_lines: ['delete rule inet palisade input handle 7'],
      changes: [expect.objectContaining({ kind: 'rule_removed' })],
    })
    expect(t.enforcer.status.tampering).toMatchObject({
      condition: 'none',
      repairs: 2,
      lastBy: `nft (pid ${TAMPERER.pid})`,
    })
    // the third repair within the window is a fight: one event for the whole condition
    t.dp.tamper(deleteFirstRule)
    await t.tick()
    expect(t.of('agent.tampering').map((e) => e.details.condition)).toEqual([
      'repaired',
      'repaired',
      'ongoing',
    ])
    expect(t.of('agent.tampering')[2]?.details).toMatchObject({ repairs_in_window: 3 })
    expect(t.enforcer.status.tampering).toMatchObject({ condition: 'ongoing', repairs: 3 })
    for (let i = 0; i < 3; i++) {
      t.dp.tamper(deleteFirstRule)
      await t.tick(2000)
      expect(await t.inSync()).toBe(true)
    }
    expect(t.of('agent.tampering')).toHaveLength(3)
    expect(t.enforcer.status.tampering).toMatchObject({ condition: 'ongoing', repairs: 6 })
    // quiet for a minute: the next check ends the condition, counting the episode's repairs
    await t.tick(59_000)
    expect(t.of('agent.tampering')).toHaveLength(3)
    await t.tick(30_000)
    expect(t.of('agent.tampering').map((e) => e.details.condition)).toEqual([
      'repaired',
      'repaired',
      'ongoing',
      'ended',
    ])
    expect(t.of('agent.tampering')[3]).toMatchObject({ severity: 'info', details: { repairs: 6 } })
    expect(t.enforcer.status.tampering).toMatchObject({ condition: 'none', repairs: 6 })
  })

  for (const backend of ['nftables', 'iptables-nft'] as const) {
    it(`${backend}: under a fight (the same change every 500 ms for 20 s) each repair is at once, and reported as one condition`, async () => {
      const published: EnforcementStatus[] = []
      const t = fakeEnforcer({ backend, onStatus: (s) => published.push(s) })
      t.enforcer.setDesired(t.desired)
      await t.tick()
      // each read and each apply takes 10 ms from now on
      t.dp.delayMs = 10
      const applies = t.dp.calls.applies
      const start = t.clock.now()
      published.length = 0
      for (let round = 0; round < 40; round++) {
        t.dp.tamper(removeOurs(backend))
        await t.tick(500)
      }
      // each time, missing only for one read and one apply: never delayed by the fight
      const missing = gaps(t.dp, t.desired, start)
      expect(missing).toHaveLength(40)
      expect(Math.max(...missing)).toBe(20)
      expect(t.dp.calls.applies - applies).toBe(40)
      expect(t.of('agent.tampering').map((e) => e.details.condition)).toEqual([
        'repaired',
        'repaired',
        'ongoing',
      ])
      expect(t.enforcer.status.tampering).toMatchObject({ condition: 'ongoing', repairs: 40 })
      // what changes each round (counts, times) is published at most once a second
      expect(published.length).toBeLessThanOrEqual(2 * 2 + 20 + 1)
      await t.tick(1000)
      expect(published[published.length - 1]?.tampering.repairs).toBe(40)
      expect(t.of('agent.firewall_apply_failed')).toEqual([])
    })
  }

  it('iptables-legacy under a fight: after the first repair found by a poll, rules are polled every 250 ms (without set contents) until a minute of quiet', async () => {
    const t = fakeEnforcer({ backend: 'iptables-legacy', watchEvents: false, pollMs: 1000 })
    t.enforcer.setDesired(t.desired)
    await t.tick()
    t.dp.delayMs = 10
    // out of phase with the 1 s poll: the first change is found 900 ms later
    await t.tick(100)
    const start = t.clock.now()
    const reads = { ...t.dp.calls }
    for (let round = 0; round < 40; round++) {
      t.dp.tamper(removeOurs('iptables-legacy'), { event: false })
      await t.tick(500)
    }
    // the first change is found by the 1 s poll 900 ms later (the second one came meanwhile)
    const missing = gaps(t.dp, t.desired, start)
    expect(missing).toHaveLength(39)
    expect(missing[0]).toBe(900 + 20)
    expect(Math.max(...missing.slice(1))).toBeLessThanOrEqual(250 + 20)
    expect(t.of('agent.tampering').map((e) => e.details.condition)).toEqual([
      'repaired',
      'repaired',
      'ongoing',
    ])
    expect(t.enforcer.status.tampering).toMatchObject({ condition: 'ongoing', repairs: 39 })
    // set contents are read by the 1 s polls and after repairs, not by the 250 ms ones
    const quick = t.dp.calls.reads - t.dp.calls.fullReads - (reads.reads - reads.fullReads)
    expect(quick).toBeGreaterThanOrEqual(3 * 38)
    expect(t.dp.calls.fullReads - reads.fullReads).toBeLessThanOrEqual(20 + 1)
    // a minute after the last repair the condition ends, and polling is back to once a second
    await t.tick(61_000)
    expect(t.of('agent.tampering').map((e) => e.details.condition)).toContain('ended')
    const before = t.dp.calls.reads
    await t.tick(10_000)
    // ten polls a second apart, and the 30 s backstop
    expect(t.dp.calls.reads - before).toBe(10 + 1)
  })

  it('paces repairs against a process that changes our rules in a tight loop: at least 100 ms of rest between repairs, never an apply failure', async () => {
    const t = fakeEnforcer()
    t.enforcer.setDesired(t.desired)
    await t.tick()
    t.dp.delayMs = 10
    const applies = t.dp.calls.applies
    const start = t.clock.now()
    for (let i = 0; i < 500; i++) {
      t.dp.tamper(deleteFirstRule)
      await t.tick(10)
    }
    await t.tick(1000)
    expect(await t.inSync()).toBe(true)
    const repairs = t.dp.calls.applies - applies
    // each repair: read, apply, read back (30 ms), then 100 ms of rest
    expect(repairs).toBeLessThanOrEqual(Math.ceil(5000 / 130) + 3)
    expect(repairs).toBeGreaterThanOrEqual(Math.floor(5000 / 130) - 3)
    // missing at most for the rest, the read back that found the next change, a read and an apply
    expect(Math.max(...gaps(t.dp, t.desired, start))).toBeLessThanOrEqual(100 + 3 * 10)
    expect(t.enforcer.status.health).toBe('healthy')
    expect(t.of('agent.firewall_apply_failed')).toEqual([])
    expect(t.of('agent.tampering').map((e) => e.details.condition)).toEqual([
      'repaired',
      'repaired',
      'ongoing',
    ])
  })

  it('iptables-legacy in a tight-loop fight: repairs, failed ones too, rest as long as they took, keeping the tools busy at most half the time', async () => {
    const t = fakeEnforcer({ backend: 'iptables-legacy', watchEvents: false, pollMs: 1000 })
    t.enforcer.setDesired(t.desired)
    await t.tick()
    // slow tools (50 ms a call): a failing repair, 3 applies and 4 reads, outlasts the 250 ms poll
    t.dp.delayMs = 50
    for (let round = 0; round < 6; round++) {
      t.dp.tamper(removeOurs('iptables-legacy'), { event: false })
      await t.tick(500)
    }
    expect(t.enforcer.status.tampering.condition).toBe('ongoing')
    // now every 5 ms: each read back finds our rules removed again, so applies fail
    const before = t.dp.calls.reads + t.dp.calls.applies
    for (let i = 0; i < 2000; i++) {
      t.dp.tamper(removeOurs('iptables-legacy'), { event: false })
      await t.tick(5)
    }
    const busyMs = (t.dp.calls.reads + t.dp.calls.applies - before) * 50
    expect(busyMs).toBeGreaterThan(0)
    expect(busyMs).toBeLessThanOrEqual(10_000 / 2 + 350)
    expect(t.of('agent.firewall_apply_failed')).toHaveLength(1)
  })

  it('applies again when the read-back still differs, and fails after 3 applies', async () => {
    const t = fakeEnforcer()
    // another process undoes the first apply at once: the second one holds
    let undo = 1
    t.dp.afterApply = (k) => (undo-- > 0 ? deleteFirstRule(k) : k)
    t.enforcer.setDesired(t.desired)
    await t.tick()
    expect(t.enforcer.status.health).toBe('healthy')
    expect(t.dp.calls.applies).toBe(2)

    const u = fakeEnforcer()
    u.dp.afterApply = deleteFirstRule
    u.enforcer.setDesired(u.desired)
    await u.tick()
    expect(u.dp.calls.applies).toBe(3)
    expect(u.enforcer.status).toMatchObject({
      health: 'unhealthy',
      reason: 'enforcing policy failed: the kernel still differs after 3 applies: rule_removed',
    })
    expect(u.enforcer.verified).toBeUndefined()
    // retried later, the same failure again: still one event
    await u.tick(200)
    expect(u.dp.calls.applies).toBe(6)
    expect(u.of('agent.firewall_apply_failed')).toHaveLength(1)
    expect(u.of('agent.firewall_apply_failed')[0]?.details).toMatchObject({
      trigger: 'policy version 1',
    })
  })

  it('retries a failing apply with doubling back-off, one event per distinct failure', async () => {
    const t = fakeEnforcer()
    for (let i = 0; i < 4; i++) t.dp.fail('apply', 'nft: Could not process rule: No buffer space')
    t.enforcer.setDesired(t.desired)
    await t.tick()
    expect(t.dp.calls.applies).toBe(1)
    // failure n is retried after 100 * 2^n ms
    for (const [wait, applies] of [
      [200, 2],
      [400, 3],
      [800, 4],
    ] as const) {
      await t.tick(wait - 1)
      expect(t.dp.calls.applies).toBe(applies - 1)
      await t.tick(1)
      expect(t.dp.calls.applies).toBe(applies)
    }
    expect(t.enforcer.status.reason).toBe(
      'enforcing policy failed: nft: Could not process rule: No buffer space',
    )
    expect(t.of('agent.firewall_apply_failed')).toHaveLength(1)
    // a different failure is a new event
    t.dp.fail('read', 'nft: netlink: Error: cache initialization failed')
    await t.tick(1600)
    expect(t.of('agent.firewall_apply_failed').map((e) => e.details.reason)).toEqual([
      'enforcing policy failed: nft: Could not process rule: No buffer space',
      'enforcing policy failed: nft: netlink: Error: cache initialization failed',
    ])
    expect(t.enforcer.status.health).toBe('unhealthy')
    // the next retry succeeds: healthy, the reason gone, the back-off reset
    await t.tick(3200)
    expect(t.enforcer.status).toMatchObject({ health: 'healthy', applied: { version: 1 } })
    expect(t.enforcer.status.reason).toBeUndefined()
    expect(await t.inSync()).toBe(true)
  })

  it('reads everything again when the kernel says change events were lost', async () => {
    const t = fakeEnforcer()
    t.enforcer.setDesired(t.desired)
    await t.tick()
    t.dp.tamper(deleteFirstRule, { event: false })
    await t.tick(1000)
    expect(await t.inSync(), 'no event, no look yet').toBe(false)
    t.dp.loseEvents()
    await t.tick()
    expect(await t.inSync()).toBe(true)
    expect(t.of('agent.tampering')[0]?.details).toMatchObject({
      trigger: 'kernel change events were lost',
    })
    expect(t.of('agent.tampering')[0]?.details.process).toBeUndefined()
  })

  it('says so when the change monitor ends, restarts it after a second and looks again', async () => {
    const t = fakeEnforcer()
    t.enforcer.setDesired(t.desired)
    await t.tick()
    t.dp.endMonitor('nft monitor exited (code 1)')
    t.dp.tamper(deleteFirstRule, { event: false })
    await t.tick()
    expect(t.enforcer.status).toMatchObject({
      health: 'healthy',
      reason: 'nft monitor exited (code 1)',
    })
    expect(t.dp.watched).toBe(false)
    await t.tick(999)
    expect(await t.inSync()).toBe(false)
    await t.tick(1)
    expect(t.dp.calls.watches).toBe(2)
    expect(t.dp.watched).toBe(true)
    expect(await t.inSync()).toBe(true)
    expect(t.of('agent.tampering')[0]?.details.trigger).toBe('change monitor restarted')
    expect(t.enforcer.status.reason).toBeUndefined()
  })

  it('finds silent tampering at the backstop, and skips set contents for events that touch none', async () => {
    const t = fakeEnforcer()
    t.enforcer.setDesired(t.desired)
    await t.tick()
    t.dp.tamper(deleteFirstRule, { event: false })
    await t.tick(29_999)
    expect(await t.inSync()).toBe(false)
    await t.tick(1)
    expect(await t.inSync()).toBe(true)
    expect(t.of('agent.tampering')[0]?.details.trigger).toBe('backstop')
    const full = t.dp.calls.fullReads
    t.dp.tamper(deleteFirstRule)
    await t.tick()
    expect(t.dp.calls.fullReads, 'a rule change reads no set contents').toBe(full)
    t.dp.tamper((k) => k, { lines: ['delete element inet palisade peers_x_v4 { 198.18.0.1 }'] })
    await t.tick()
    expect(t.dp.calls.fullReads).toBe(full + 1)
  })

  it("a rule change during the backstop's read of set contents ends that read: the rule is put back at once, the contents are read again after", async () => {
    const t = fakeEnforcer()
    t.enforcer.setDesired(t.desired)
    await t.tick()
    t.dp.elementsReadMs = 4000
    await t.tick(31_000)
    // the backstop's read of set contents began at 30 s and runs until 34 s
    const full = t.dp.calls.fullReads
    t.dp.tamper(deleteFirstRule)
    await t.tick()
    expect(await t.inSync()).toBe(true)
    expect(t.dp.calls.abortedReads).toBe(1)
    expect(t.of('agent.tampering')).toHaveLength(1)
    expect(t.of('agent.tampering')[0]?.details.trigger).toBe('kernel change event')
    // the read of contents, made again from 31 s, runs to its end and finds the rest as it was
    await t.tick(4000)
    expect(t.dp.calls.fullReads).toBe(full + 1)
    expect(t.dp.calls.abortedReads).toBe(1)
    expect(t.enforcer.status.health).toBe('healthy')
    // a change of set contents is no reason to end a read of them
    await t.tick(25_000)
    t.dp.tamper((k) => k, { lines: ['delete element inet palisade peers_x_v4 { 198.18.0.1 }'] })
    await t.tick(5000)
    expect(t.dp.calls.abortedReads).toBe(1)
  })

  it('a process changing our rules without pause puts off the read of set contents by two backstop periods at most: silent drift in them is still found', async () => {
    const t = fakeEnforcer()
    t.enforcer.setDesired(t.desired)
    await t.tick()
    t.dp.elementsReadMs = 4000
    t.dp.tamper(emptySets, { event: false })
    const fight = t.clock.setInterval(() => t.dp.tamper(deleteFirstRule), 1000)
    // backstop reads at 30 s and after give way to the rule changes, each second
    await t.tick(59_000)
    expect(t.dp.calls.abortedReads).toBeGreaterThan(20)
    expect(setsWhole(t.dp, t.desired)).toBe(false)
    // from 60 s the last complete read of contents (at 0 s) is two periods old: this one ends
    for (let s = 0; s < 6; s++) await t.tick(1000)
    expect(setsWhole(t.dp, t.desired)).toBe(true)
    fight.cancel()
    // that repair read and applied for 8 s: in a fight, the next one rests as long
    for (let s = 0; s < 20; s++) await t.tick(1000)
    expect(await t.inSync()).toBe(true)
  })

  it('reads set contents when any of the changes held during a reconcile touched them', async () => {
    const t = fakeEnforcer()
    t.enforcer.setDesired(t.desired)
    await t.tick()
    t.dp.delayMs = 10
    t.dp.tamper(deleteFirstRule)
    await t.tick(5)
    // while that repair runs: a rule change, then an element change
    t.dp.tamper((k) => k, { lines: ['add rule inet palisade input tcp dport 9 accept'] })
    t.dp.tamper((k) => k, { lines: ['delete element inet palisade peers_x_v4 { 198.18.0.1 }'] })
    const full = t.dp.calls.fullReads
    await t.tick(1000)
    expect(t.dp.calls.fullReads).toBe(full + 1)
  })

  it('polls what emits no events (iptables-legacy) and puts a removed hook back', async () => {
    const t = fakeEnforcer({ backend: 'iptables-legacy', watchEvents: false, pollMs: 1000 })
    t.enforcer.setDesired(t.desired)
    await t.tick()
    expect(await t.inSync()).toBe(true)
    t.dp.tamper(
      editChain('INPUT', (rules) => rules.filter((r) => r.verdict?.kind !== 'jump')),
      {
        event: false,
      },
    )
    await t.tick(999)
    expect(await t.inSync()).toBe(false)
    await t.tick(1)
    expect(await t.inSync()).toBe(true)
    expect(t.dp.calls.watches).toBe(0)
    expect(t.of('agent.tampering')[0]?.details).toMatchObject({
      trigger: 'poll',
      changes: [
        { kind: 'hook_missing', table: 'ip filter', chain: 'INPUT' },
        { kind: 'hook_missing', table: 'ip6 filter', chain: 'INPUT' },
      ],
    })
  })

  it('with a cheap look for changes (iptables-legacy), polls read nothing until the look finds a change; a rule change is read without set contents, a set change with them', async () => {
    const t = fakeEnforcer({ backend: 'iptables-legacy', watchEvents: false, pollMs: 200 })
    t.dp.looks = true
    t.enforcer.setDesired(t.desired)
    await t.tick()
    const idle = { ...t.dp.calls }
    await t.tick(10_000)
    // fifty looks, and no read
    expect(t.dp.calls.looks - idle.looks).toBe(50)
    expect(t.dp.calls.reads).toBe(idle.reads)
    // a removed hook: found by the next look, read without set contents, repaired
    await t.tick(50)
    t.dp.tamper(removeOurs('iptables-legacy'), { event: false })
    const before = { ...t.dp.calls }
    await t.tick(149)
    expect(await t.inSync()).toBe(false)
    await t.tick(1)
    expect(await t.inSync()).toBe(true)
    expect(t.dp.calls.fullReads).toBe(before.fullReads)
    expect(t.dp.calls.reads - before.reads).toBe(2)
    expect(t.of('agent.tampering')[0]?.details).toMatchObject({ trigger: 'poll' })
    // an element removed from our set: read with set contents
    await t.tick(1000)
    t.dp.tamper(
      (k) => ({ ...k, ipsets: k.ipsets.map((s) => ({ ...s, elements: s.elements.slice(1) })) }),
      { event: false },
    )
    const full = t.dp.calls.fullReads
    await t.tick(200)
    expect(await t.inSync()).toBe(true)
    expect(t.dp.calls.fullReads).toBeGreaterThan(full)
    expect(t.of('agent.tampering')).toHaveLength(2)
  })

  it('a poll tick during a reconcile does not look then (a look compares with the last read) but once it is done', async () => {
    const t = fakeEnforcer({ backend: 'iptables-legacy', watchEvents: false, pollMs: 200 })
    t.dp.looks = true
    t.enforcer.setDesired(t.desired)
    await t.tick()
    await t.tick(29_990)
    // the backstop's read takes 250 ms, over the poll tick at 30,200
    t.dp.delayMs = 250
    const reads = t.dp.calls.reads
    await t.tick(11)
    expect(t.dp.calls.reads).toBe(reads + 1)
    const looks = t.dp.calls.looks
    await t.tick(248)
    expect(t.dp.calls.looks).toBe(looks)
    await t.tick(1)
    expect(t.dp.calls.looks).toBe(looks + 1)
    // and a change after it is found by the next look
    t.dp.tamper(removeOurs('iptables-legacy'), { event: false })
    await t.tick(200 + 3 * 250)
    expect(await t.inSync()).toBe(true)
    expect(t.of('agent.tampering')).toHaveLength(1)
  })

  it('takes a new version that compiles to what the kernel holds as applied, without an apply', async () => {
    const t = fakeEnforcer()
    t.enforcer.setDesired(t.desired)
    await t.tick()
    const same = { ...t.desired, version: 2 }
    t.enforcer.setDesired(same)
    await t.tick()
    expect(t.enforcer.status.applied).toMatchObject({ version: 2, plan: 'none' })
    expect(t.enforcer.verified).toBe(same)
    expect(t.dp.calls.applies).toBe(1)
  })

  it('runs one reconcile at a time: what arrives during a slow one is held and run once after', async () => {
    const t = fakeEnforcer()
    t.dp.delayMs = 1000
    t.enforcer.setDesired(t.desired)
    // during the first read: another process changes something, and a new version arrives
    await t.tick(500)
    t.dp.tamper(deleteFirstRule)
    const v2 = desiredOf(2)
    t.enforcer.setDesired(v2)
    await t.tick(2499)
    // read, apply, read back (ending at 3 s): nothing else ran meanwhile
    expect(t.dp.calls).toMatchObject({ reads: 2, applies: 1 })
    expect(t.enforcer.status.applied).toBeUndefined()
    // then once more, for both: version 2 applied, and the change was overwritten, not repaired
    await t.tick(3001)
    expect(t.dp.calls).toMatchObject({ reads: 4, applies: 2 })
    expect(t.enforcer.verified).toBe(v2)
    expect(t.of('agent.tampering')).toEqual([])
    await t.tick(10_000)
    expect(t.dp.calls).toMatchObject({ reads: 4, applies: 2 })
  })

  it('stops: no timers left, the tools it kept running ended, events ignored', async () => {
    const t = fakeEnforcer()
    t.enforcer.setDesired(t.desired)
    await t.tick()
    expect(t.dp.calls.closes).toBe(0)
    t.enforcer.stop()
    expect(t.clock.pending).toBe(0)
    expect(t.dp.watched).toBe(false)
    expect(t.dp.calls.closes).toBe(1)
    t.dp.tamper(deleteFirstRule, { by: { pid: OWN_PID + 1, comm: 'iptables' } })
    await t.tick(60_000)
    expect(await t.inSync()).toBe(false)
  })
})
