import { describe, expect, it } from 'vitest'
import { scopeConflicts } from './coexistence-check.js'

const A = { href: '/orgs/1/labels/1' }
const B = { href: '/orgs/1/labels/2' }
const items = [
  { scope: [A, B], illumio_primary: true },
  { scope: [A], illumio_primary: false, workload_mode: 'illuminated' as const },
]

describe('a coexistence scope next to the others', () => {
  it('finds the same labels in any order as a duplicate, or a contradiction when primary differs', () => {
    expect(scopeConflicts(items, { scope: [B, A], illumio_primary: true }, null)).toEqual([
      { number: 1, kind: 'duplicate' },
    ])
    expect(scopeConflicts(items, { scope: [B, A], illumio_primary: false }, null)).toEqual([
      { number: 1, kind: 'contradiction' },
    ])
  })

  it('tells scopes apart by enforcement, and an edited scope from itself', () => {
    expect(scopeConflicts(items, { scope: [A], illumio_primary: true }, null)).toEqual([])
    expect(
      scopeConflicts(
        items,
        { scope: [A], illumio_primary: true, workload_mode: 'illuminated' },
        null,
      ),
    ).toEqual([{ number: 2, kind: 'contradiction' }])
    expect(scopeConflicts(items, items[1] as (typeof items)[1], 1)).toEqual([])
  })
})
