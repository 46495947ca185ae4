/**
 * Shared address sets by reference. A host policy names each large peer set by its content id
 * instead of writing it out; the agent fetches a set it does not hold once and afterwards only
 * what changed in it (a delta from a set it holds). Two hundred hosts that all allow the same
 * twenty thousand web servers then cost one set, stored and sent once, not two hundred copies.
 * The content id lets the agent check every set it builds, delta or not, against what the
 * policy names.
 */
import type { AddressSet, DocRule, HostPolicy, HostRule, PolicyDoc, SetRef } from '@palisade/model'
import { cidrToInterval, HOST_POLICY_LIMITS } from '@palisade/model'
import { createHash } from 'node:crypto'
import type { SetEntry, SetWant } from './messages.js'

/**
 * Sets of at most this many entries go inline: a small set costs less written out than the
 * request that would fetch it.
 */
export const INLINE_SET_MAX = 64

/** A set's content id: the same set has the same id on every server and every agent. */
export const addressSetId = (s: AddressSet): string =>
  createHash('sha256')
    .update(JSON.stringify([s.v4, s.v6]))
    .digest('hex')
    .slice(0, 32)

export const isSetRef = (p: DocRule['peers']): p is SetRef => typeof p === 'object' && 'set' in p

/** The ids of the sets a policy names, each once, in rule order. */
export function setRefsOf(doc: PolicyDoc): string[] {
  const ids = new Set<string>()
  for (const r of doc.rules) if (isSetRef(r.peers)) ids.add(r.peers.set)
  return [...ids]
}

/**
 * The server's side: host policies with their large sets by reference. Ids are remembered per
 * set object, and a computation shares one object among every host with the same peers, so a
 * set is hashed once however many hosts name it.
 */
export class SetReferencer {
  readonly #ids = new WeakMap<AddressSet, string>()

  /** The policy as sent, and the sets it names by id. */
  docOf(policy: HostPolicy): { doc: PolicyDoc; sets: Map<string, AddressSet> } {
    const sets = new Map<string, AddressSet>()
    const rules = policy.rules.map((r): DocRule => {
      const p = r.peers
      if (p === 'any' || p.v4.length + p.v6.length <= INLINE_SET_MAX) return r
      let id = this.#ids.get(p)
      if (id === undefined) {
        id = addressSetId(p)
        this.#ids.set(p, id)
      }
      sets.set(id, p)
      return { ...r, peers: { set: id } }
    })
    return { doc: { ...policy, rules }, sets }
  }
}

/** The policy with every set it names written out; throws naming a set `sets` lacks. */
export function resolveSetRefs(doc: PolicyDoc, sets: ReadonlyMap<string, AddressSet>): HostPolicy {
  let peers = 0
  const rules = doc.rules.map((r): HostRule => {
    if (!isSetRef(r.peers)) return r as HostRule
    const set = sets.get(r.peers.set)
    if (!set) throw new Error(`rule ${r.key} names set ${r.peers.set}, which is not held`)
    peers += set.v4.length + set.v6.length
    return { ...r, peers: set }
  })
  // Inline peers were counted by the policy's check; the sets are counted here.
  if (peers > HOST_POLICY_LIMITS.peers)
    throw new Error(
      `the policy's sets hold ${peers} peer entries; a policy may have at most ${HOST_POLICY_LIMITS.peers}`,
    )
  return { ...doc, rules }
}

/** What changed between two sets: the entries of `to` not in `from`, and those of `from` not in `to`. */
export interface SetDelta {
  readonly add: AddressSet
  readonly remove: AddressSet
}

export function setDelta(from: AddressSet, to: AddressSet): SetDelta {
  const minus = (a: readonly string[], b: readonly string[]) => {
    const other = new Set(b)
    return a.filter((x) => !other.has(x))
  }
  return {
    add: { v4: minus(to.v4, from.v4), v6: minus(to.v6, from.v6) },
    remove: { v4: minus(from.v4, to.v4), v6: minus(from.v6, to.v6) },
  }
}

/** `from` with a delta applied: what the set the delta was made for holds, in the same form. */
export function applySetDelta(from: AddressSet, d: SetDelta): AddressSet {
  return {
    v4: applyFamily(from.v4, d.add.v4, d.remove.v4),
    v6: applyFamily(from.v6, d.add.v6, d.remove.v6),
  }
}

/**
 * A set in the model's form has entries that do not overlap, sorted by first address: removed
 * entries go by spelling, and each added one where its first address sorts, found by a binary
 * search that parses a few entries, not all of them (a 25,000-entry set in a few milliseconds).
 * Whatever a server sends, the caller checks the result against the id it should have.
 */
function applyFamily(
  base: readonly string[],
  add: readonly string[],
  remove: readonly string[],
): string[] {
  const gone = new Set(remove)
  const kept = gone.size === 0 ? base : base.filter((x) => !gone.has(x))
  const first = (cidr: string) => cidrToInterval(cidr).interval.lo
  const adds = add
    .map((cidr) => ({ cidr, lo: first(cidr) }))
    .sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0))
  const out: string[] = []
  let at = 0
  for (const a of adds) {
    let lo = at
    let hi = kept.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (first(kept[mid] as string) < a.lo) lo = mid + 1
      else hi = mid
    }
    while (at < lo) out.push(kept[at++] as string)
    out.push(a.cidr)
  }
  while (at < kept.length) out.push(kept[at++] as string)
  return out
}

/**
 * The agent's side: the sets its last policy named, to resolve the next one with. A new set is
 * asked for with the set the same rule named before, so the server can send only what changed.
 */
export class HeldSets {
  #byId = new Map<string, AddressSet>()
  /** The set each rule of the last policy named: where a delta for that rule starts. */
  #byRule = new Map<string, string>()

  /** What to ask the server for to resolve `doc`: each set not held, once. */
  wanted(doc: PolicyDoc): SetWant[] {
    const out = new Map<string, SetWant>()
    for (const r of doc.rules) {
      if (!isSetRef(r.peers)) continue
      const id = r.peers.set
      if (this.#byId.has(id) || out.has(id)) continue
      const from = this.#byRule.get(r.key)
      out.set(id, from === undefined ? { id } : { id, from })
    }
    return [...out.values()]
  }

  /**
   * `doc` with its sets written out, from those held and those `got` (checked by
   * `checkSetsReply`). Every set got is checked against its id once built; one that does not
   * match, or a delta from a set not held, is refused (throws) and nothing is held anew.
   */
  resolve(doc: PolicyDoc, got: readonly SetEntry[]): HostPolicy {
    const sets = new Map<string, AddressSet>()
    for (const id of setRefsOf(doc)) {
      const held = this.#byId.get(id)
      if (held) sets.set(id, held)
    }
    for (const e of got) {
      let set: AddressSet
      if ('set' in e) set = e.set
      else {
        const base = this.#byId.get(e.from)
        if (!base)
          throw new Error(
            `the server sent set ${e.id} as a change from set ${e.from}, which this agent does not hold`,
          )
        set = applySetDelta(base, e)
      }
      if (addressSetId(set) !== e.id)
        throw new Error(`the server's set ${e.id} is not the set that id names; it is refused`)
      sets.set(e.id, set)
    }
    const policy = resolveSetRefs(doc, sets)
    this.#byId = new Map(setRefsOf(doc).map((id) => [id, sets.get(id) as AddressSet]))
    this.#byRule = new Map(
      doc.rules.flatMap((r) => (isSetRef(r.peers) ? [[r.key, r.peers.set] as const] : [])),
    )
    return policy
  }
}
