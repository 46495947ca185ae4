import { nameOfHref } from './api.js'
import { policyTypeName } from './names.js'

/**
 * The draft's pending changes as the API lists them (`GET /sec_policy/pending`), and how the
 * console names them and asks about a few of them. Pure.
 */

export interface PendingItem {
  type: string
  href: string
  update_type: string
  draft: Record<string, unknown> | null
  active: Record<string, unknown> | null
}

/** The API's listing, grouped by object type, as one list. */
export const pendingItems = (listing: Record<string, Omit<PendingItem, 'type'>[]>) =>
  Object.entries(listing).flatMap(([type, list]) => list.map((i): PendingItem => ({ type, ...i })))

const textOf = (x: unknown) => (typeof x === 'string' ? x : undefined)
const nameOf = (i: PendingItem) =>
  textOf(i.draft?.name) ?? textOf(i.active?.name) ?? nameOfHref(i.href) ?? i.href

/** `Rule set: web tier`; the firewall settings are one of a kind and need no name. */
export const titleOf = (i: PendingItem) =>
  i.type === 'firewall_settings'
    ? policyTypeName(i.type)
    : `${policyTypeName(i.type)}: ${nameOf(i)}`

/** The API's `change_subset` naming these items: their hrefs by object type. */
export function changeSubset(
  items: readonly Pick<PendingItem, 'type' | 'href'>[],
): Record<string, { href: string }[]> {
  const out: Record<string, { href: string }[]> = {}
  for (const i of items) (out[i.type] ??= []).push({ href: i.href })
  return out
}

/** `2 rule sets`, `1 IP list`: a count of policy objects of one type. */
export function typeCount(type: string, n: number): string {
  const name = policyTypeName(type)
  // An acronym keeps its capitals (`IP list`); other words read in lower case.
  const word = /^[A-Z]{2}/.test(name) ? name : name.toLowerCase()
  return `${n} ${word}${n === 1 ? '' : 's'}`
}

/** `2 rule sets, 1 service, the firewall settings`. */
export function countsText(items: readonly Pick<PendingItem, 'type'>[]): string {
  const counts = new Map<string, number>()
  for (const i of items) counts.set(i.type, (counts.get(i.type) ?? 0) + 1)
  return [...counts]
    .map(([t, n]) => (t === 'firewall_settings' ? 'the firewall settings' : typeCount(t, n)))
    .join(', ')
}

/** What reverting one pending change does to its object. */
export function revertMeaning(updateType: string): string {
  switch (updateType) {
    case 'create':
      return 'It was never provisioned: reverting takes it out of the draft.'
    case 'delete':
      return 'Its pending deletion is cancelled: it stays as the active policy has it.'
    default:
      return 'Its draft goes back to the active policy: the changes listed are dropped.'
  }
}
