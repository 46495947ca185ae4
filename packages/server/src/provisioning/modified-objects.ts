/**
 * What a provision changed, object by object, as `GET /sec_policy/{version}/modified_objects`
 * lists it: recorded at the provision, or (for versions made before that was kept) found by
 * comparing the version's policy with the one before. Pure.
 */
import { draftObjectHref } from '../hrefs.js'
import { SINGULAR } from '../policy/types.js'
import type { ModifiedObject, VersionSnapshot } from '../stores/versions.js'
import type { Doc } from '../validate.js'
import { isObj } from '../validate.js'
import { sameContent } from './content-compare.js'
import type { ObjectChange } from './provision-plan.js'

/** Who last edited a copy, as `{href}`. */
const editorOf = (doc: Doc | null | undefined) => {
  const by = doc?.updated_by ?? doc?.created_by
  return isObj(by) && typeof by.href === 'string' ? { href: by.href } : null
}

/** An object a provision changed; a delete is the provisioner's, at the provision's time. */
export function modifiedEntry(
  c: ObjectChange,
  provision: { readonly by: { readonly href: string }; readonly at: string },
): ModifiedObject {
  const doc = c.after ?? c.before
  return {
    href: c.href,
    object_type: c.resource,
    update_type: c.change,
    name: typeof doc?.name === 'string' ? doc.name : null,
    updated_at:
      c.change !== 'delete' && typeof doc?.updated_at === 'string' ? doc.updated_at : provision.at,
    updated_by: c.change === 'delete' ? provision.by : (editorOf(doc) ?? provision.by),
  }
}

/** What version `after` changed from `before` (the one it followed; empty for the first). */
export function diffSnapshots(
  org: number,
  before: VersionSnapshot,
  after: VersionSnapshot,
  provision: { readonly by: { readonly href: string }; readonly at: string },
): ModifiedObject[] {
  const out: ModifiedObject[] = []
  const types = new Set([...Object.keys(before), ...Object.keys(after)]) as Set<
    keyof VersionSnapshot
  >
  for (const type of types) {
    const old = new Map((before[type] ?? []).map((o) => [o.id, o.doc]))
    const now = new Map((after[type] ?? []).map((o) => [o.id, o.doc]))
    for (const id of new Set([...old.keys(), ...now.keys()])) {
      const b = old.get(id) ?? null
      const a = now.get(id) ?? null
      if (sameContent(a, b)) continue
      out.push(
        modifiedEntry(
          {
            resource: SINGULAR[type],
            href: draftObjectHref(org, type, id),
            change: b === null ? 'create' : a === null ? 'delete' : 'update',
            before: b,
            after: a,
          },
          provision,
        ),
      )
    }
  }
  return out
}
