/**
 * What docs/coexistence.md says must happen to a new inbound connection, written from the
 * document's tables alone: it imports nothing of the compiler, the renderers or the packet-path
 * model, so a bug there cannot make the truth table agree with itself. "§2 table" etc. name the
 * section and table of docs/coexistence.md each branch comes from.
 *
 * The setting is the lab's: our rules programmed on an empty host, then foreign rules added
 * (iptables rules inserted at the top of INPUT or appended to it, and nftables base chains at a
 * priority below and above every one we use), then one connection tried. Nothing repairs
 * tampering here (no agent runs), so a foreign rule inserted before our hook stays there.
 */
import type { ForeignVerdict, Placement } from './foreign-rule.js'
import { FOREIGN_PRIORITY } from './foreign-rule.js'

export type OracleBackend = 'nftables' | 'iptables-nft' | 'iptables-legacy'
export type OracleMode = 'exclusive' | 'coexistence_primary' | 'coexistence_non_primary'
export type OracleEnforcement = 'idle' | 'visibility_only' | 'selective' | 'full'

export interface OracleCase {
  readonly backend: OracleBackend
  readonly mode: OracleMode
  readonly enforcement: OracleEnforcement
  /** The workload is in `blocked_connection_reject_scopes`. */
  readonly rejectBlocked: boolean
  /** The action of the rule of ours that matches the connection, or none matches. */
  readonly ours: 'allow' | 'deny' | 'none'
  /** Foreign rules that match the connection, in the order they were added. */
  readonly foreign: readonly { readonly placement: Placement; readonly verdict: ForeignVerdict }[]
}

export type OracleOutcome =
  | { readonly outcome: 'delivered' }
  | { readonly outcome: 'dropped' | 'rejected'; readonly by: 'us' | 'foreign' }

/** The priority of the iptables filter hook (§4 table: "iptables-nft (0)"); legacy shares it. */
const IPTABLES_PRIORITY = 0
/** §4 table, base chain priority: "-140" for exclusive and primary, "+20" for non-primary. */
const OUR_NFT_PRIORITY = { first: -140, nonPrimary: 20 } as const

type Ours = 'allow' | 'block'
type Step = { readonly kind: 'foreign'; readonly verdict: ForeignVerdict } | { readonly kind: 'us' }
interface BaseChain {
  readonly priority: number
  readonly steps: readonly Step[]
}

/** Our policy decision, enforced or not (§2, "Order inside our chains" and the decision list). */
function ourDecision(c: OracleCase): Ours {
  // §2: "potentially_blocked (our policy would block it, but the workload does not enforce
  // that rule: `visibility_only`, or `selective` outside a deny rule)"
  if (c.enforcement === 'visibility_only') return 'allow'
  if (c.ours === 'allow') return 'allow' // §2 order: "allow rules -> deny rules -> default"
  if (c.ours === 'deny') return 'block'
  // §2: "default (`full`: block; `selective`, `visibility_only`: allow ...)"
  return c.enforcement === 'full' ? 'block' : 'allow'
}

/** The hooked base chains a packet meets, in the order of their priorities. */
function baseChains(c: OracleCase): BaseChain[] {
  // §1, rule 1: "`idle`: the agent programs nothing and removes its own rules"
  const present = c.enforcement !== 'idle'
  const before = c.foreign.filter((f) => f.placement === 'before')
  const after = c.foreign.filter((f) => f.placement === 'after')
  const foreign = (fs: typeof c.foreign): Step[] =>
    fs.map((f) => ({ kind: 'foreign', verdict: f.verdict }))
  const iptablesOurs = present && c.backend !== 'nftables'
  // §3 table, hook position: "first" (exclusive, primary) or "appended last" (non-primary) on
  // a chain still empty; then `-I INPUT 1` puts each rule above everything (the last added
  // first) and `-A INPUT` below our hook: "foreign rule inserted before our hook" and "after".
  const chains: BaseChain[] = [
    {
      priority: IPTABLES_PRIORITY,
      steps: [
        ...foreign([...before].reverse()),
        ...(iptablesOurs ? [{ kind: 'us' } as const] : []),
        ...foreign(after),
      ],
    },
    {
      priority: FOREIGN_PRIORITY.lower,
      steps: foreign(c.foreign.filter((f) => f.placement === 'nft-lower')),
    },
    {
      priority: FOREIGN_PRIORITY.higher,
      steps: foreign(c.foreign.filter((f) => f.placement === 'nft-higher')),
    },
  ]
  if (present && c.backend === 'nftables') {
    // §4: "We own `table inet palisade`: base chains `input`, `output`, `forward`"
    const priority =
      c.mode === 'coexistence_non_primary' ? OUR_NFT_PRIORITY.nonPrimary : OUR_NFT_PRIORITY.first
    chains.push({ priority, steps: [{ kind: 'us' }] })
  }
  return chains.sort((a, b) => a.priority - b.priority)
}

/**
 * The outcome of one new inbound connection. Replies pass our chains as established (§2 order:
 * "established/related" first), and foreign rules here only match the connection's requests.
 */
export function expectedOutcome(c: OracleCase): OracleOutcome {
  const decision = ourDecision(c)
  // §2 table, block: "drop (or reject, for `blocked_connection_reject_scopes`), final" in
  // every mode.
  const block = c.rejectBlocked ? 'rejected' : 'dropped'
  for (const chain of baseChains(c)) {
    for (const step of chain.steps) {
      if (step.kind === 'foreign') {
        // §6: a foreign drop "before us hides traffic from us" (pre-empt) and one "after us
        // blocks what we allow" (override): a drop or reject is final wherever it stands.
        if (step.verdict === 'drop') return { outcome: 'dropped', by: 'foreign' }
        if (step.verdict === 'reject') return { outcome: 'rejected', by: 'foreign' }
        // §6 bypass: "a foreign accept before us lets through what we would block"; §4
        // Decision: "an accept ends only its own base chain".
        if (step.verdict === 'accept') break
        continue // a rule with no verdict only counts
      }
      if (decision === 'block') return { outcome: block, by: 'us' }
      // §2 table, allow: exclusive on iptables is a "final accept: nothing after us is
      // evaluated" (§3: a foreign rule after our hook is "never reached"); coexistence
      // "pass on: iptables `RETURN`" (§3: "evaluated for what we allow"); on nftables
      // `accept`, which ends our base chain only (§4 Decision).
      if (c.backend === 'nftables' || c.mode === 'exclusive') break
    }
    // §4: base chains are "policy accept; our drops are explicit" (ours, and the lab's foreign
    // chains and the iptables built-in chains are made the same way): the next base chain runs.
  }
  return { outcome: 'delivered' }
}
