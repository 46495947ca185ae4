/**
 * A `change_subset`: the pending changes a provision, a revert or a dependency question is
 * about, by their hrefs in any version (kept in draft form). Types the vendor has and Palisade
 * has not may be named with empty lists.
 */
import { draftHref } from '../hrefs.js'
import { POLICY_TYPES } from '../policy/types.js'
import type { Checker } from '../validate.js'

/** The vendor's provisionable types Palisade does not have. */
const VENDOR_ONLY = ['virtual_services', 'secure_connect_gateways', 'virtual_servers']

/** The draft hrefs of a change subset; undefined when it is not given. */
export function changeSubsetOf(c: Checker, x: unknown, path: string): Set<string> | undefined {
  if (x === undefined) return undefined
  const subset = c.object(x, path)
  const wanted = new Set<string>()
  for (const [type, list] of Object.entries(subset ?? {})) {
    const known = (POLICY_TYPES as readonly string[]).includes(type)
    if (!known && !VENDOR_ONLY.includes(type)) {
      c.fail(`${path}.${type}`, `not a provisionable type; use ${POLICY_TYPES.join(', ')}`)
      continue
    }
    if (!Array.isArray(list)) {
      c.fail(`${path}.${type}`, 'must be a list of {"href": ...}')
      continue
    }
    if (!known && list.length > 0) {
      c.fail(`${path}.${type}`, `Palisade has no ${type}: the list must be empty`)
      continue
    }
    list.forEach((item, i) => {
      const href = c.hrefRef(item, `${path}.${type}[${i}]`)
      if (href !== undefined) wanted.add(draftHref(href))
    })
  }
  return wanted
}
