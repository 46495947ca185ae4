/**
 * A desired state carrying an injection (the peer entry that once added a foreign accepting
 * table) is refused before any command runs: the namespace keeps exactly the ruleset it had.
 */
import { applyDesired, readHost } from '@palisade/agent'
import { BACKENDS, compile, RenderError } from '@palisade/firewall'
import { Lab } from '@palisade/lab'
import type { HostPolicy } from '@palisade/model'
import { describe, expect, it } from 'vitest'
import { SAMPLE_FAILSAFE, SAMPLE_POLICY } from '../../packages/firewall/src/host-policy.fixture.js'

const INJECTED_PEER =
  '10.9.9.9/32 } ; }\ntable inet injected { chain c { type filter hook input priority -300; policy accept; accept } }\ntable inet palisade { set s { type ipv4_addr; elements = { 10.9.9.8/32'

const withPeer = (peer: string): HostPolicy => ({
  ...SAMPLE_POLICY,
  rules: SAMPLE_POLICY.rules.map((r) =>
    r.key === '/r/2#in' && r.peers !== 'any' ? { ...r, peers: { ...r.peers, v4: [peer] } } : r,
  ),
})

describe('a refused render changes nothing in the kernel', () => {
  for (const backend of BACKENDS) {
    it(`${backend}: an injected peer is refused and the ruleset stays as it was`, async () => {
      const ns = await Lab.isolated()
      try {
        const good = compile(SAMPLE_POLICY, { backend, failsafe: SAMPLE_FAILSAFE })
        await applyDesired(ns.run, good, (await readHost(ns.run)).ruleset, { modeChanged: true })
        const before = (await readHost(ns.run)).ruleset
        const bad = compile(withPeer(INJECTED_PEER), { backend, failsafe: SAMPLE_FAILSAFE })
        for (const modeChanged of [false, true]) {
          await expect(applyDesired(ns.run, bad, before, { modeChanged })).rejects.toThrow(
            RenderError,
          )
        }
        const after = (await readHost(ns.run)).ruleset
        expect(after).toEqual(before)
        expect(after.tables.map((t) => t.name)).not.toContain('injected')
      } finally {
        await ns.destroy()
      }
    })
  }
})
