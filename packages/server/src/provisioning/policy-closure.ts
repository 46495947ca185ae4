/**
 * Whether a policy is whole: every object it holds finds the objects it refers to. A provision
 * and a revert each make one policy (the active one, the draft) from part of the pending
 * changes; what they would leave dangling is a dependency of that part. Pure.
 */
import { draftObjectHref, isDraftObjectHref } from '../hrefs.js'
import { draftReferencesOf } from '../policy/references.js'
import type { PolicyType } from '../policy/types.js'
import type { Doc } from '../validate.js'

/** An object of a policy, as it would be. */
export interface PolicyEntry {
  readonly type: PolicyType
  readonly id: string
  readonly doc: Doc
}

/** An object (`by`, a draft href) that refers to another the policy would not hold (`needs`). */
export interface Missing {
  readonly by: string
  readonly needs: string
}

/** Every reference of the policy to a policy object it does not hold. */
export function missingReferences(org: number, policy: readonly PolicyEntry[]): Missing[] {
  const held = new Set(policy.map((o) => draftObjectHref(org, o.type, o.id)))
  return policy.flatMap((o) =>
    draftReferencesOf(o.doc)
      .filter((h) => isDraftObjectHref(h) && !held.has(h))
      .map((needs) => ({ by: draftObjectHref(org, o.type, o.id), needs })),
  )
}

/** An object a change subset must also take, and the objects of the subset that need it. */
export interface Dependency {
  readonly dependency: string
  readonly required_by: readonly string[]
}

/**
 * What a subset must also take so that nothing is missing: of each missing reference, the end
 * outside the subset (the object referred to, or the one referring), for the end inside it.
 */
export function dependenciesOf(
  missing: readonly Missing[],
  inSubset: (href: string) => boolean,
): Dependency[] {
  const out = new Map<string, Set<string>>()
  for (const m of missing) {
    const [dependency, by] = inSubset(m.by) ? [m.needs, m.by] : [m.by, m.needs]
    if (inSubset(dependency) || !inSubset(by)) continue
    const set = out.get(dependency) ?? new Set<string>()
    set.add(by)
    out.set(dependency, set)
  }
  return [...out].map(([dependency, by]) => ({ dependency, required_by: [...by] }))
}
