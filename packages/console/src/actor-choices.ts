import type { Label } from './api.js'
import { labelText } from './api.js'
import type { Choice } from './picker.js'
import type { Actor } from './policy-text.js'
import { ACTOR_KINDS, actorHref, actorText } from './policy-text.js'

/** What a rule's sides and services can name, from what the policy holds. */
export interface PolicyNames {
  readonly labels: readonly Label[]
  readonly labelGroups: readonly { href: string; name: string; key?: string }[]
  readonly ipLists: readonly { href: string; name: string }[]
  readonly services: readonly { href: string; name: string }[]
  readonly workloads: readonly { href: string; name: string }[]
}

const KIND_OF_CHOICE: Record<string, (typeof ACTOR_KINDS)[number]> = {
  label: 'label',
  'label group': 'label_group',
  'IP list': 'ip_list',
  workload: 'workload',
}

export const ALL_WORKLOADS: Choice = { value: 'ams', text: 'All workloads', kind: 'all' }

/** Every actor a rule side can name, as picker choices. */
export function actorChoices(n: PolicyNames): Choice[] {
  return [
    ALL_WORKLOADS,
    ...n.labels.map((l) => ({ value: l.href, text: labelText(l), kind: 'label' })),
    ...n.labelGroups.map((g) => ({ value: g.href, text: g.name, kind: 'label group' })),
    ...n.ipLists.map((l) => ({ value: l.href, text: l.name, kind: 'IP list' })),
    ...n.workloads.map((w) => ({ value: w.href, text: w.name, kind: 'workload' })),
  ]
}

export const serviceChoices = (n: PolicyNames): Choice[] =>
  n.services.map((s) => ({ value: s.href, text: s.name, kind: 'service' }))

/** A rule side as the API holds it, from the chosen actors. */
export function actorsOf(chosen: readonly Choice[]): Actor[] {
  return chosen.map((c) => {
    if (c.value === 'ams') return { actors: 'ams' }
    const kind = KIND_OF_CHOICE[c.kind] ?? 'label'
    return { [kind]: { href: c.value } }
  })
}

/** The chosen actors of a rule side, for its edit form. */
export function choicesOf(actors: readonly Actor[], names: (href: string) => string | undefined) {
  return actors.map((a): Choice => {
    if (a.actors === 'ams') return ALL_WORKLOADS
    const kind = ACTOR_KINDS.find((k) => a[k]) ?? 'label'
    return {
      value: actorHref(a) ?? '',
      text: actorText({ [kind]: a[kind] }, names).replace(/ \((label group|IP list)\)$/, ''),
      kind: kind === 'label_group' ? 'label group' : kind === 'ip_list' ? 'IP list' : kind,
    }
  })
}
