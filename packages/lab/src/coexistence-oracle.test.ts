import { describe, expect, it } from 'vitest'
import type { OracleCase, OracleOutcome } from './coexistence-oracle.js'
import { expectedOutcome } from './coexistence-oracle.js'
import type { ForeignVerdict, Placement } from './foreign-rule.js'

const base: OracleCase = {
  backend: 'iptables-nft',
  mode: 'exclusive',
  enforcement: 'full',
  rejectBlocked: false,
  ours: 'allow',
  foreign: [],
}
const f = (placement: Placement, verdict: ForeignVerdict) => ({ placement, verdict })
const delivered: OracleOutcome = { outcome: 'delivered' }
const droppedByUs: OracleOutcome = { outcome: 'dropped', by: 'us' }
const rejectedByUs: OracleOutcome = { outcome: 'rejected', by: 'us' }
const droppedByForeign: OracleOutcome = { outcome: 'dropped', by: 'foreign' }
const rejectedByForeign: OracleOutcome = { outcome: 'rejected', by: 'foreign' }

// Each row is a sentence of docs/coexistence.md, read for one connection.
const TABLE: [string, Partial<OracleCase>, OracleOutcome][] = [
  // §1 rule 1 and §2 decisions
  ['idle: nothing of ours, the rest decides', { enforcement: 'idle', ours: 'deny' }, delivered],
  [
    'idle: a foreign drop still drops',
    { enforcement: 'idle', foreign: [f('after', 'drop')] },
    droppedByForeign,
  ],
  ['full: no rule matches, the default blocks', { ours: 'none' }, droppedByUs],
  ['full: a deny rule blocks', { ours: 'deny' }, droppedByUs],
  ['full, reject scope: blocked is rejected', { ours: 'none', rejectBlocked: true }, rejectedByUs],
  ['selective: the default allows', { enforcement: 'selective', ours: 'none' }, delivered],
  ['selective: a deny rule blocks', { enforcement: 'selective', ours: 'deny' }, droppedByUs],
  [
    'visibility_only: nothing is enforced',
    { enforcement: 'visibility_only', ours: 'deny', rejectBlocked: true },
    delivered,
  ],
  // §3: iptables, foreign rule after our hook
  [
    'iptables exclusive: a foreign drop after us is never reached',
    { foreign: [f('after', 'drop')] },
    delivered,
  ],
  [
    'iptables exclusive, visibility_only: still a final accept',
    { enforcement: 'visibility_only', ours: 'deny', foreign: [f('after', 'reject')] },
    delivered,
  ],
  [
    'iptables primary: a foreign drop after us is evaluated for what we allow',
    { mode: 'coexistence_primary', foreign: [f('after', 'drop')] },
    droppedByForeign,
  ],
  [
    'iptables non-primary: a foreign reject after us is evaluated for what we allow',
    {
      backend: 'iptables-legacy',
      mode: 'coexistence_non_primary',
      foreign: [f('after', 'reject')],
    },
    rejectedByForeign,
  ],
  [
    'iptables primary: what we block is final before a foreign accept after us',
    { mode: 'coexistence_primary', ours: 'deny', foreign: [f('after', 'accept')] },
    droppedByUs,
  ],
  // §6: a foreign rule before our hook
  [
    'iptables bypass: a foreign accept before us lets through what we block',
    { ours: 'deny', foreign: [f('before', 'accept')] },
    delivered,
  ],
  [
    'iptables pre-empt: a foreign reject before us decides first',
    { ours: 'deny', rejectBlocked: true, foreign: [f('before', 'reject')] },
    rejectedByForeign,
  ],
  [
    'iptables: the rule inserted last stands first',
    { ours: 'deny', foreign: [f('before', 'accept'), f('before', 'drop')] },
    droppedByForeign,
  ],
  [
    'iptables: a foreign accept inserted last skips the drop and our hook',
    { ours: 'deny', foreign: [f('before', 'drop'), f('before', 'accept')] },
    delivered,
  ],
  [
    'a foreign rule with no verdict only counts',
    { ours: 'deny', foreign: [f('before', 'none'), f('nft-lower', 'none')] },
    droppedByUs,
  ],
  // §4: nftables priorities; an accept ends only its own base chain
  [
    'nftables exclusive: our chain (-140) runs before iptables (0)',
    { backend: 'nftables', ours: 'deny', rejectBlocked: true, foreign: [f('before', 'drop')] },
    rejectedByUs,
  ],
  [
    'nftables non-primary: our chain (+20) runs after iptables (0)',
    {
      backend: 'nftables',
      mode: 'coexistence_non_primary',
      ours: 'deny',
      rejectBlocked: true,
      foreign: [f('before', 'drop')],
    },
    droppedByForeign,
  ],
  [
    'nftables: a foreign accept earlier does not end our chain',
    {
      backend: 'nftables',
      mode: 'coexistence_non_primary',
      ours: 'deny',
      foreign: [f('before', 'accept'), f('nft-lower', 'accept')],
    },
    droppedByUs,
  ],
  [
    'nftables exclusive: a later foreign chain can still drop what we accept',
    { backend: 'nftables', foreign: [f('nft-higher', 'drop')] },
    droppedByForeign,
  ],
  [
    'nftables exclusive: an iptables rule (0) after us can still reject what we accept',
    { backend: 'nftables', foreign: [f('after', 'reject')] },
    rejectedByForeign,
  ],
  [
    'iptables exclusive: a later nftables chain can still drop what we accept',
    { foreign: [f('nft-higher', 'drop')] },
    droppedByForeign,
  ],
  [
    'a foreign chain at a lower priority drops before we see the packet',
    { ours: 'deny', rejectBlocked: true, foreign: [f('nft-lower', 'drop')] },
    droppedByForeign,
  ],
  [
    'a foreign accept at a lower priority does not bypass our iptables hook',
    { ours: 'deny', rejectBlocked: true, foreign: [f('nft-lower', 'accept')] },
    rejectedByUs,
  ],
]

describe('the coexistence oracle reads docs/coexistence.md', () => {
  it.each(TABLE)('%s', (_, c, want) => {
    expect(expectedOutcome({ ...base, ...c })).toEqual(want)
  })
})
