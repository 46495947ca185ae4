import type { HostPolicy } from '@palisade/model'
import { addrToBigInt, bigIntToAddr, mergeCidrs } from '@palisade/model'

/**
 * N distinct peer addresses that no CIDR merging can collapse: every other address of
 * 198.18.0.0/15, then of fd00:198:18::/64 once the IPv4 range is used up.
 */
export function peerAddresses(n: number): { v4: string[]; v6: string[] } {
  const v4: string[] = []
  const v6: string[] = []
  const base4 = addrToBigInt('198.18.0.0').value
  const base6 = addrToBigInt('fd00:198:18::').value
  for (let i = 0; i < n; i++) {
    if (i < 65536) v4.push(`${bigIntToAddr(4, base4 + BigInt(i * 2))}/32`)
    else v6.push(`${bigIntToAddr(6, base6 + BigInt((i - 65536) * 2))}/128`)
  }
  return { v4, v6 }
}

/** The key of the one rule of policyWithPeers: its sets are named after it. */
export const BENCH_RULE_KEY = '/bench/allow#in'

/** A host policy allowing TCP 8080 from N peers (and blocking the rest), in the given mode. */
export function policyWithPeers(
  n: number,
  mode: HostPolicy['mode']['mode'] = 'coexistence_primary',
  extra: readonly string[] = [],
): HostPolicy {
  // As the agent gets them: parsed from JSON, each address one flat string. (Built here by
  // concatenation, they would be rope strings, which every comparison in a diff flattens.)
  const peers = JSON.parse(JSON.stringify(peerAddresses(n))) as ReturnType<typeof peerAddresses>
  const more = JSON.parse(JSON.stringify(extra)) as string[]
  return {
    version: 1,
    workload: { href: '/w/bench', name: 'bench' },
    enforcementMode: 'full',
    visibilityLevel: 'flow_off',
    mode: { mode, applied: true, reason: { kind: 'no_match' } },
    rejectBlocked: false,
    loopbackInPolicy: false,
    rules: [
      {
        key: BENCH_RULE_KEY,
        ruleHref: '/bench/allow',
        action: 'allow',
        direction: 'inbound',
        // Normalised, as the server sends peers: in address order.
        peers: { v4: mergeCidrs(4, [...more, ...peers.v4]), v6: peers.v6 },
        services: [{ proto: 6, port: 8080 }],
      },
    ],
  }
}

/** A policy file (as `palisade agent run --policy-file` reads it) allowing TCP 8080 from N peers. */
export const policyFileWithPeers = (n: number, version = 1) => {
  const p = peerAddresses(n)
  return {
    version,
    enforcement_mode: 'full',
    firewall_coexistence: { illumio_primary: true },
    rules: [
      {
        action: 'allow',
        direction: 'inbound',
        peers: [...p.v4, ...p.v6],
        services: [{ proto: 6, port: 8080 }],
      },
    ],
  }
}
