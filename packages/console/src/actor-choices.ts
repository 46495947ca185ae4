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

/** The picker's kind of each actor kind; an exclusion is a kind of its own, so edits keep it. */
const KIND_OF_CHOICE: Record<string, { kind: (typeof ACTOR_KINDS)[number]; exclusion?: true }> = {
  label: { kind: 'label' },
  'label group': { kind: 'label_group' },
  'IP list': { kind: 'ip_list' },
  workload: { kind: 'workload' },
  'virtual service': { kind: 'virtual_service' },
  'excluded label': { kind: 'label', exclusion: true },
  'excluded label group': { kind: 'label_group', exclusion: true },
}
const CHOICE_OF_KIND: Record<(typeof ACTOR_KINDS)[number], string> = {
  label: 'label',
  label_group: 'label group',
  ip_list: 'IP list',
  workload: 'workload',
  virtual_service: 'virtual service',
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
    const { kind, exclusion } = KIND_OF_CHOICE[c.kind] ?? { kind: 'label' }
    return { [kind]: { href: c.value }, ...(exclusion && { exclusion }) }
  })
}

/** The chosen actors of a rule side, for its edit form. */
export function choicesOf(actors: readonly Actor[], names: (href: string) => string | undefined) {
  return actors.map((a): Choice => {
    if (a.actors === 'ams') return ALL_WORKLOADS
    const kind = ACTOR_KINDS.find((k) => a[k]) ?? 'label'
    return {
      value: actorHref(a) ?? '',
      text: actorText({ [kind]: a[kind] }, names).replace(
        / \((label group|IP list|virtual service)\)$/,
        '',
      ),
      kind: `${a.exclusion ? 'excluded ' : ''}${CHOICE_OF_KIND[kind]}`,
    }
  })
}
