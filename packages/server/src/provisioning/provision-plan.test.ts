import { describe, expect, it } from 'vitest'
import { ApiError } from '../errors.js'
import type { PolicyType } from '../policy/types.js'
import type { PolicyObjectRow } from '../stores/policy-objects.js'
import type { Doc } from '../validate.js'
import { pendingChange, planProvision } from './provision-plan.js'

const D = '/orgs/1/sec_policy/draft'

function row(
  type: PolicyType,
  id: string,
  draft: Doc | null,
  active: Doc | null,
  deleted = false,
): PolicyObjectRow {
  return { org_id: 1, type, id, draft, active, draft_deleted: deleted ? 1 : 0, updated_at: '' }
}
const svc = (port: number) => ({ name: `svc-${port}`, service_ports: [{ port, proto: 6 }] })
const ruleSetUsing = (...hrefs: string[]) => ({
  name: 'rs',
  rules: hrefs.map((href, i) => ({
    id: i + 1,
    providers: [{ label: { href: '/orgs/1/labels/1' } }],
    consumers: [{ actors: 'ams' }],
    ingress_services: [{ href }],
  })),
})

const usingActive = ruleSetUsing('/orgs/1/sec_policy/active/services/2')

/** The 406 a plan throws, as tokens and messages. */
function refusal(f: () => unknown): { token: string; message: string }[] {
  try {
    f()
  } catch (e) {
    if (e instanceof ApiError && e.status === 406) return [...e.issues]
    throw e
  }
  throw new Error('the plan was not refused')
}

describe('pending changes', () => {
  it.each([
    ['a delete, whatever the copies', row('services', '1', svc(80), svc(80), true), 'delete'],
    ['a create: never provisioned', row('services', '1', svc(80), null), 'create'],
    ['an update: the draft differs', row('services', '1', svc(81), svc(80)), 'update'],
    ['nothing: the draft is the active copy', row('services', '1', svc(80), svc(80)), null],
  ])('%s', (_what, r, change) => {
    expect(pendingChange(r)).toBe(change)
  })
})

describe('a provision plan', () => {
  const unchanged = row('services', '1', svc(22), svc(22))
  const created = row('services', '2', svc(80), null)
  const updated = row('services', '3', svc(444), svc(443))
  const deleted = row('ip_lists', '4', { name: 'gone' }, { name: 'gone' }, true)
  const rows = [unchanged, created, updated, deleted]

  it('takes every pending change when no subset is asked for', () => {
    const plan = planProvision(1, rows, new Set())
    expect(plan.chosen).toEqual([created, updated, deleted])
    expect(plan.counts).toEqual({ services: 2, ip_lists: 1 })
    // the active policy after: unchanged objects keep their copy, the deleted one is gone
    expect(plan.snapshot).toEqual({
      services: [
        { id: '1', doc: svc(22) },
        { id: '2', doc: svc(80) },
        { id: '3', doc: svc(444) },
      ],
    })
    expect(plan.changes).toEqual([
      {
        resource: 'service',
        href: `${D}/services/2`,
        change: 'create',
        before: null,
        after: svc(80),
      },
      {
        resource: 'service',
        href: `${D}/services/3`,
        change: 'update',
        before: svc(443),
        after: svc(444),
      },
      {
        resource: 'ip_list',
        href: `${D}/ip_lists/4`,
        change: 'delete',
        before: { name: 'gone' },
        after: undefined,
      },
    ])
  })

  it('takes only the subset asked for; the other drafts stay pending', () => {
    const plan = planProvision(1, rows, new Set([`${D}/services/3`]))
    expect(plan.chosen).toEqual([updated])
    expect(plan.counts).toEqual({ services: 1 })
    expect(plan.snapshot).toEqual({
      services: [
        { id: '1', doc: svc(22) },
        { id: '3', doc: svc(444) },
      ],
      ip_lists: [{ id: '4', doc: { name: 'gone' } }],
    })
  })

  it.each([
    [
      'a subset naming an object with nothing pending',
      rows,
      [`${D}/services/1`, `${D}/services/9`],
      [
        {
          token: 'not_pending',
          message: `no pending change for ${D}/services/1, ${D}/services/9`,
        },
      ],
    ],
    [
      'nothing pending at all',
      [unchanged],
      [],
      [{ token: 'nothing_to_provision', message: 'there are no pending changes to provision' }],
    ],
    [
      'a rule set whose service would not be active',
      [created, row('rule_sets', '5', ruleSetUsing(`${D}/services/2`), null)],
      [`${D}/rule_sets/5`],
      [
        {
          token: 'provision_dependency',
          message: `${D}/rule_sets/5 needs ${D}/services/2, which would not be active; provision them together`,
        },
      ],
    ],
    [
      'a deleted service an active rule set still uses (named by its active href)',
      [
        row('services', '2', svc(80), svc(80), true),
        row('rule_sets', '5', usingActive, usingActive),
      ],
      [],
      [
        {
          token: 'provision_dependency',
          message: `${D}/rule_sets/5 needs ${D}/services/2, which would not be active; provision them together`,
        },
      ],
    ],
  ])('refuses %s', (_what, given, wanted, issues) => {
    expect(refusal(() => planProvision(1, given, new Set(wanted)))).toEqual(issues)
  })

  it('lets objects that need each other be provisioned together, labels need no provision', () => {
    const rs = row('rule_sets', '5', ruleSetUsing(`${D}/services/2`), null)
    const plan = planProvision(1, [created, rs], new Set([`${D}/services/2`, `${D}/rule_sets/5`]))
    expect(plan.chosen).toEqual([created, rs])
  })

  it('lists at most 20 missing references', () => {
    const many = Array.from({ length: 25 }, (_, i) => `${D}/services/${100 + i}`)
    const issues = refusal(() =>
      planProvision(1, [row('rule_sets', '5', ruleSetUsing(...many), null)], new Set()),
    )
    expect(issues).toHaveLength(20)
    expect(issues[19]?.message).toContain(`${D}/services/119`)
  })
})
