import { describe, expect, it } from 'vitest'
import { sameContent } from './content-compare.js'

const scope = { scope: [{ href: '/orgs/1/labels/1' }], illumio_primary: true }
const settings = {
  firewall_coexistence: [] as unknown[],
  ike_authentication_type: 'psk',
  created_at: '2026-01-01T00:00:00.000Z',
}

describe('whether two copies hold the same policy', () => {
  it.each([
    ['identical copies', settings, { ...settings }, true],
    [
      'a coexistence scope added and removed again: only the edit stamps differ',
      settings,
      { ...settings, updated_at: '2026-02-02T00:00:00.000Z', updated_by: { href: '/users/1' } },
      true,
    ],
    ['fields written in another order', { a: 1, b: 2 }, { b: 2, a: 1 }, true],
    ['nested keys in another order', { s: [{ x: 1, y: 2 }] }, { s: [{ y: 2, x: 1 }] }, true],
    [
      'a scope still there',
      settings,
      { ...settings, firewall_coexistence: [scope], updated_at: 'later' },
      false,
    ],
    ['a list in another order (order matters in lists)', { l: [1, 2] }, { l: [2, 1] }, false],
    ['a field emptied is not a field left out', { d: '' }, {}, false],
    ['a creation time that differs is content', { created_at: 'a' }, { created_at: 'b' }, false],
    [
      'an edit stamp inside a rule is content (rules carry none of their own)',
      { rules: [{ updated_at: 'a' }] },
      { rules: [{ updated_at: 'b' }] },
      false,
    ],
    ['a copy against none', settings, null, false],
    ['none against none', null, null, true],
  ])('%s', (_what, a, b, same) => {
    expect(sameContent(a, b)).toBe(same)
    expect(sameContent(b, a)).toBe(same)
  })
})
