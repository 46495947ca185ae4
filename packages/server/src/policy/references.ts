import { draftHref, draftObjectHref } from '../hrefs.js'
import type { PolicyObjectRow } from '../stores/policy-objects.js'
import type { Doc } from '../validate.js'
import { isObj } from '../validate.js'

/** Every href an object refers to (labels, groups, lists, services, workloads), as written. */
export function referencesOf(doc: Doc): string[] {
  const out: string[] = []
  const walk = (x: unknown, key?: string) => {
    if (Array.isArray(x)) x.forEach((y) => walk(y))
    else if (isObj(x)) for (const [k, v] of Object.entries(x)) walk(v, k)
    else if (key === 'href' && typeof x === 'string') out.push(x)
  }
  walk(doc)
  return out
}

/** The draft hrefs an object refers to, in whichever version each reference was written. */
export const draftReferencesOf = (doc: Doc) => referencesOf(doc).map(draftHref)

/** The objects whose drafts refer to the object at `href` (a draft href), other than itself. */
export function usersOf(href: string, rows: readonly PolicyObjectRow[]): string[] {
  return rows
    .filter(
      (o) =>
        !o.draft_deleted &&
        o.draft !== null &&
        draftObjectHref(o.org_id, o.type, o.id) !== href &&
        draftReferencesOf(o.draft).includes(href),
    )
    .map((o) => draftObjectHref(o.org_id, o.type, o.id))
}
