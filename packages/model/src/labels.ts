/** The label keys every org starts with. */
export const DEFAULT_LABEL_KEYS = ['role', 'app', 'env', 'loc'] as const

export interface Label {
  readonly href: string
  readonly key: string
  readonly value: string
}

/** A named group of labels of one key; sub-groups nest. */
export interface LabelGroup {
  readonly href: string
  readonly key: string
  readonly name: string
  readonly labels: readonly string[]
  readonly subGroups: readonly string[]
}

export interface ScopeIssue {
  readonly code: 'unknown_label' | 'duplicate_key'
  readonly href: string
  readonly message: string
}

/**
 * Checks a scope (a set of label hrefs ANDed together): every label exists and no two share a
 * key, since a workload carries at most one label per key and such a scope could match nothing.
 */
export function checkScope(
  scope: readonly string[],
  labels: ReadonlyMap<string, Label>,
): ScopeIssue[] {
  const issues: ScopeIssue[] = []
  const seen = new Map<string, string>()
  for (const href of scope) {
    const label = labels.get(href)
    if (!label) {
      issues.push({ code: 'unknown_label', href, message: `label ${href} does not exist` })
      continue
    }
    const other = seen.get(label.key)
    if (other !== undefined) {
      issues.push({
        code: 'duplicate_key',
        href,
        message: `scope has two labels of key "${label.key}" (${other} and ${href}); use at most one per key`,
      })
    }
    seen.set(label.key, href)
  }
  return issues
}

/** Expands label groups (recursively, cycle-safe) to the set of label hrefs they stand for. */
export function expandLabelGroup(
  href: string,
  groups: ReadonlyMap<string, LabelGroup>,
  seen: Set<string> = new Set(),
): Set<string> {
  const out = new Set<string>()
  if (seen.has(href)) return out
  seen.add(href)
  const group = groups.get(href)
  if (!group) return out
  for (const l of group.labels) out.add(l)
  for (const sub of group.subGroups) for (const l of expandLabelGroup(sub, groups, seen)) out.add(l)
  return out
}
