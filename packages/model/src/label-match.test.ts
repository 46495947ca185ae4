import { describe, expect, it } from 'vitest'
import type { LabelRef } from './label-match.js'
import { labelIndexOf, labelRefIssues, labelSelector, scopeMatches } from './label-match.js'
import { label } from './snapshot.fixture.js'

const web = label(1, 'role', 'web')
const db = label(2, 'role', 'db')
const x = label(3, 'role', 'x')
const prod = label(4, 'env', 'prod')
const dev = label(5, 'env', 'dev')
const stage = label(6, 'env', 'stage')
const envs = {
  href: '/orgs/1/sec_policy/draft/label_groups/envs',
  key: 'env',
  name: 'prod and dev',
  labels: [prod.href],
  subGroups: ['/orgs/1/sec_policy/draft/label_groups/devs'],
}
const devs = {
  href: '/orgs/1/sec_policy/draft/label_groups/devs',
  key: 'env',
  name: 'dev',
  labels: [dev.href],
  subGroups: [],
}
const empty = {
  href: '/orgs/1/sec_policy/draft/label_groups/empty',
  key: 'env',
  name: 'none',
  labels: [],
  subGroups: [],
}
const idx = labelIndexOf([web, db, x, prod, dev, stage], [envs, devs, empty])
const L = (l: { href: string }, exclusion = false): LabelRef => ({
  label: l.href,
  ...(exclusion && { exclusion: true }),
})
const G = (g: { href: string }, exclusion = false): LabelRef => ({
  labelGroup: g.href,
  ...(exclusion && { exclusion: true }),
})

/** Which of these label sets the references select. */
const hosts: Record<string, { href: string }[]> = {
  'web/prod': [web, prod],
  'web/dev': [web, dev],
  'db/prod': [db, prod],
  'x/prod': [x, prod],
  'x/stage': [x, stage],
  'web only': [web],
  none: [],
}
const selected = (refs: LabelRef[]) =>
  Object.entries(hosts)
    .filter(([, ls]) =>
      scopeMatches(
        refs,
        ls.map((l) => l.href),
        idx,
      ),
    )
    .map(([name]) => name)

describe('label references (the vendor: one type ORed, types ANDed, exclusions within a type)', () => {
  it.each<[string, LabelRef[], string[]]>([
    ['no references: everything', [], Object.keys(hosts)],
    ['different types are ANDed', [L(web), L(prod)], ['web/prod']],
    ['one type is ORed', [L(prod), L(dev)], ['web/prod', 'web/dev', 'db/prod', 'x/prod']],
    ['both: (web or db) and prod', [L(web), L(db), L(prod)], ['web/prod', 'db/prod']],
    [
      'an exclusion: another label of that type, not none',
      [L(x, true)],
      ['web/prod', 'web/dev', 'db/prod', 'web only'],
    ],
    ['an exclusion ANDed with another type', [L(x, true), L(prod)], ['web/prod', 'db/prod']],
    [
      'a label group stands for its labels and sub-groups',
      [G(envs)],
      ['web/prod', 'web/dev', 'db/prod', 'x/prod'],
    ],
    ['an excluded group', [G(envs, true)], ['x/stage']],
    [
      'a group with one of its labels excluded',
      [G(envs), L(dev, true)],
      ['web/prod', 'db/prod', 'x/prod'],
    ],
    ['an empty group selects nothing of its type', [G(empty), L(web)], []],
    ['two exclusions of one type', [L(prod, true), L(dev, true)], ['x/stage']],
  ])('%s', (_name, refs, expected) => {
    expect(selected(refs)).toEqual(expected)
  })

  it('an unknown label is a type of its own', () => {
    const ghost = '/orgs/1/labels/999'
    expect(scopeMatches([{ label: ghost }], [web.href, ghost], idx)).toBe(true)
    expect(scopeMatches([{ label: ghost }], [web.href], idx)).toBe(false)
    expect(labelSelector([{ label: ghost }, L(web)], idx)?.types.size).toBe(2)
  })

  it('names what can never match, and a second included label of one type in a scope', () => {
    expect(labelRefIssues([L(web), L(web, true)], idx, { oneIncludedPerType: false })).toEqual([
      {
        code: 'matches_nothing',
        message: expect.stringMatching(/"role".*matches nothing/) as string,
      },
    ])
    expect(labelRefIssues([G(envs), G(envs, true)], idx, { oneIncludedPerType: false })).toEqual([
      { code: 'matches_nothing', message: expect.any(String) as string },
    ])
    expect(labelRefIssues([L(web), L(db)], idx, { oneIncludedPerType: true })).toEqual([
      { code: 'several_included', message: expect.stringMatching(/2 labels.*"role"/) as string },
    ])
    // several exclusions of one type, or one included and others excluded, are fine
    expect(
      labelRefIssues([L(prod, true), L(dev, true), L(web)], idx, { oneIncludedPerType: true }),
    ).toEqual([])
    expect(labelRefIssues([L(web), L(db)], idx, { oneIncludedPerType: false })).toEqual([])
  })
})
