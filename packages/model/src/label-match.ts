import type { Label, LabelGroup } from './labels.js'
import { expandLabelGroup } from './labels.js'

/**
 * Which labelled things (workloads, virtual services) a set of label references selects, the
 * vendor's way (docs/policy-semantics.md): references of one label type are ORed, types are
 * ANDed, and an exclusion of a type selects what carries another label of that type. Rule
 * sides, rule-set scopes and firewall-settings scopes all match through here, so the host
 * policy, the recompute of affected hosts, the draft traffic decisions and the console's
 * provision preview cannot disagree.
 */

/** A label or label group, included or excluded: a scope entry, or a label actor of a rule. */
export type LabelRef =
  | { readonly label: string; readonly exclusion?: true }
  | { readonly labelGroup: string; readonly exclusion?: true }

/** The labels and label groups of a policy, indexed for matching. */
export interface LabelIndex {
  /** A label's type; an unknown label is a type of its own, which nothing else shares. */
  keyOf(label: string): string
  /** A label group's type; an unknown group is a type of its own. */
  groupKeyOf(group: string): string
  /** The labels a label group stands for, its sub-groups' included. */
  expand(group: string): ReadonlySet<string>
}

export function labelIndexOf(labels: readonly Label[], groups: readonly LabelGroup[]): LabelIndex {
  const keys = new Map(labels.map((l) => [l.href, l.key]))
  const byHref = new Map(groups.map((g) => [g.href, g]))
  const expanded = new Map<string, ReadonlySet<string>>()
  return {
    keyOf: (label) => keys.get(label) ?? `\0${label}`,
    groupKeyOf: (group) => byHref.get(group)?.key ?? `\0${group}`,
    expand: (group) => {
      let out = expanded.get(group)
      if (!out) expanded.set(group, (out = expandLabelGroup(group, byHref)))
      return out
    },
  }
}

/** What one label type must be: one of `include` (any, when null), and none of `exclude`. */
interface TypeCondition {
  readonly include: ReadonlySet<string> | null
  readonly exclude: ReadonlySet<string>
}

/** A compiled set of label references: one condition per label type, all of which must hold. */
export interface LabelSelector {
  readonly types: ReadonlyMap<string, TypeCondition>
}

/** Compiles label references; null when there are none (they then select nothing by labels). */
export function labelSelector(refs: readonly LabelRef[], idx: LabelIndex): LabelSelector | null {
  if (refs.length === 0) return null
  const types = new Map<string, { include: Set<string> | null; exclude: Set<string> }>()
  for (const ref of refs) {
    const key = 'label' in ref ? idx.keyOf(ref.label) : idx.groupKeyOf(ref.labelGroup)
    const members = 'label' in ref ? [ref.label] : [...idx.expand(ref.labelGroup)]
    let t = types.get(key)
    if (!t) types.set(key, (t = { include: null, exclude: new Set() }))
    if (ref.exclusion) for (const m of members) t.exclude.add(m)
    else {
      // a group with no labels still names its type: it then selects nothing
      t.include ??= new Set()
      for (const m of members) t.include.add(m)
    }
  }
  return { types }
}

/** Whether something carrying these labels is selected: every type's condition holds. */
export function selectorMatches(
  sel: LabelSelector,
  labels: readonly string[],
  idx: LabelIndex,
): boolean {
  for (const [key, t] of sel.types) {
    const ok = labels.some(
      (l) => idx.keyOf(l) === key && (t.include === null || t.include.has(l)) && !t.exclude.has(l),
    )
    if (!ok) return false
  }
  return true
}

/** Whether a scope (label references) holds something with these labels; an empty scope holds all. */
export function scopeMatches(
  scope: readonly LabelRef[],
  labels: readonly string[],
  idx: LabelIndex,
): boolean {
  const sel = labelSelector(scope, idx)
  return sel === null || selectorMatches(sel, labels, idx)
}

export interface LabelRefIssue {
  readonly code: 'matches_nothing' | 'several_included'
  readonly message: string
}

/**
 * What is wrong with label references that can never select anything, or that name two
 * included references of one type where only one is allowed (`oneIncludedPerType`: scopes).
 */
export function labelRefIssues(
  refs: readonly LabelRef[],
  idx: LabelIndex,
  opts: { oneIncludedPerType: boolean },
): LabelRefIssue[] {
  const issues: LabelRefIssue[] = []
  const included = new Map<string, number>()
  for (const ref of refs) {
    if (ref.exclusion) continue
    const key = 'label' in ref ? idx.keyOf(ref.label) : idx.groupKeyOf(ref.labelGroup)
    included.set(key, (included.get(key) ?? 0) + 1)
  }
  if (opts.oneIncludedPerType)
    for (const [key, n] of included)
      if (n > 1)
        issues.push({
          code: 'several_included',
          message: `includes ${n} labels or label groups of type "${key}": a workload carries one label per type, so use at most one, or a label group`,
        })
  const sel = labelSelector(refs, idx)
  for (const [key, t] of sel?.types ?? [])
    if (t.include !== null && t.include.size > 0 && [...t.include].every((l) => t.exclude.has(l)))
      issues.push({
        code: 'matches_nothing',
        message: `every label of type "${key}" it includes is also excluded, so it matches nothing`,
      })
  return issues
}
