import { readHost } from '@palisade/agent'
import type { Backend, Desired, Rule, Table } from '@palisade/firewall'
import { BACKENDS, compile, diff, findTable } from '@palisade/firewall'
import { applyDesired } from '@palisade/agent'
import { Lab } from '@palisade/lab'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  arbitraryHostPolicy,
  SAMPLE_FAILSAFE,
  SAMPLE_POLICY,
} from '../../packages/firewall/src/host-policy.fixture.js'
import type { HostPolicy } from '@palisade/model'

const strip = (r: Rule) => ({ matches: r.matches, verdict: r.verdict, comment: r.comment })
const ours = (t: Table | undefined, d: Desired) =>
  t && {
    sets: [...t.sets].sort((a, b) => a.name.localeCompare(b.name)),
    chains: t.chains
      .filter((c) => d.backend === 'nftables' || c.name.startsWith('PALISADE-'))
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((c) => ({ name: c.name, base: c.base, rules: c.rules.map(strip) })),
  }

/** Applies to a fresh namespace, reads back, and checks the parse equals the rendering. */
async function roundTrip(policy: HostPolicy, backend: Backend): Promise<void> {
  const ns = await Lab.isolated()
  try {
    const desired = compile(policy, { backend, failsafe: SAMPLE_FAILSAFE })
    const before = await readHost(ns.run)
    await applyDesired(ns.run, desired, before.ruleset, { modeChanged: true })
    const after = (await readHost(ns.run)).ruleset
    expect(diff(desired, after)).toEqual([])
    for (const want of desired.tables) {
      const have = findTable(after, want.source, want.family, want.name)
      expect(ours(have, desired)).toEqual(ours({ ...want, sets: want.sets }, desired))
    }
    if (backend !== 'nftables') {
      const names = new Set(desired.ipsets.map((s) => s.name))
      expect(
        after.ipsets.filter((s) => names.has(s.name)).sort((a, b) => a.name.localeCompare(b.name)),
      ).toEqual([...desired.ipsets].sort((a, b) => a.name.localeCompare(b.name)))
    }
  } finally {
    await ns.destroy()
  }
}

describe('round trip through the real kernel', () => {
  for (const backend of BACKENDS) {
    it(`${backend}: the hand-written policy in every mode`, async () => {
      for (const mode of ['exclusive', 'coexistence_primary', 'coexistence_non_primary'] as const) {
        await roundTrip({ ...SAMPLE_POLICY, mode: { ...SAMPLE_POLICY.mode, mode } }, backend)
      }
    })

    it(`${backend}: protocols the tools print by name (VRRP, OSPF, PIM) read back as written`, async () => {
      const [first] = SAMPLE_POLICY.rules
      if (!first) throw new Error('the sample policy has no rule')
      const rules = [112, 89, 103].map((proto) => ({
        ...first,
        key: `/r/proto-${proto}`,
        services: [{ proto }],
      }))
      await roundTrip({ ...SAMPLE_POLICY, rules: [...SAMPLE_POLICY.rules, ...rules] }, backend)
    })

    it(`${backend}: generated policies (property)`, async () => {
      await fc.assert(
        fc.asyncProperty(arbitraryHostPolicy, (p) => roundTrip(p, backend)),
        { numRuns: Number(process.env.PALISADE_PROPERTY_RUNS ?? 12) },
      )
    })
  }
})
