/**
 * The audit log's account of a change: who made it, and each changed field of each resource
 * before and after. Events themselves are written by the events store.
 */
import { newUuid } from './crypto.js'
import type { Doc } from './validate.js'

export type Actor =
  | { readonly user: { readonly href: string; readonly username: string } }
  | { readonly agent: { readonly href: string; readonly hostname: string } }
  | { readonly system: Record<string, never> }

/** The fields that differ between two versions of an object, as the audit log shows them. */
export function changes(
  before: Doc | null | undefined,
  after: Doc | null | undefined,
): Record<string, { before: unknown; after: unknown }> {
  const out: Record<string, { before: unknown; after: unknown }> = {}
  for (const k of new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})])) {
    if (['updated_at', 'created_at', 'update_type'].includes(k)) continue
    const b = before?.[k]
    const a = after?.[k]
    if (JSON.stringify(b) !== JSON.stringify(a)) out[k] = { before: b ?? null, after: a ?? null }
  }
  return out
}

export function resourceChange(
  resource: string,
  href: string,
  changeType: 'create' | 'update' | 'delete',
  before?: Doc | null,
  after?: Doc | null,
): Doc {
  return {
    uuid: newUuid(),
    resource: { [resource]: { href } },
    change_type: changeType,
    changes: changes(before, after),
  }
}
