/**
 * Whether two copies of a policy object hold the same policy: what they say, not when or by
 * whom they were last edited, nor in which order their fields were written. An edit and its
 * undo leave a draft that is its active copy again. Pure.
 */
import type { Doc } from '../validate.js'
import { isObj } from '../validate.js'

/** Fields that record an edit, not its content. */
const EDIT_STAMPS = new Set(['updated_at', 'updated_by'])

/** A value as canonical JSON: object keys in order, the top level's edit stamps left out. */
function canonical(x: unknown, top: boolean): string {
  if (Array.isArray(x)) return `[${x.map((y) => canonical(y, false)).join(',')}]`
  if (!isObj(x)) return JSON.stringify(x) ?? 'null'
  const keys = Object.keys(x)
    .filter((k) => x[k] !== undefined && !(top && EDIT_STAMPS.has(k)))
    .sort()
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(x[k], false)}`).join(',')}}`
}

export function sameContent(a: Doc | null, b: Doc | null): boolean {
  if (a === null || b === null) return a === b
  return canonical(a, true) === canonical(b, true)
}
