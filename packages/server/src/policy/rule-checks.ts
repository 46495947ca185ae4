/**
 * Rules (allow and deny, and enforcement boundaries' sides) and scopes in the vendor API's
 * shapes, checked on write. Every field a rule accepts is stored, returned and honoured; a
 * value Palisade cannot honour is refused with a 406 that says which field and why, never
 * stored and ignored (docs/policy-semantics.md).
 */
import type { LabelIndex, LabelRef } from '@palisade/model'
import { labelRefIssues, RESOLVE_AS, RULE_SIDES } from '@palisade/model'
import { draftHref } from '../hrefs.js'
import type { Checker, Doc } from '../validate.js'
import { servicePort } from './port-checks.js'

/** What exists, for checking references: labels, draft objects, workloads, label types. */
export interface RefIndex {
  readonly labels: ReadonlyMap<string, { key: string }>
  readonly drafts: ReadonlySet<string>
  readonly workloads: ReadonlySet<string>
  /** The labels and the draft label groups, for what label references can match. */
  readonly labelTypes: LabelIndex
}

/** A field with a value Palisade stores but cannot honour. */
export const UNSUPPORTED = 'unsupported_field_value'
/** A field that needs an agent platform Palisade does not have (Windows). */
export const NOT_ON_PLATFORM = 'not_supported_on_platform'

/** A reference `{href}` (clients may send the referred object's other fields: only href counts). */
const refOf = (href: string) => ({ href })
const exclusionOf = (o: Doc) => (o.exclusion === true ? { exclusion: true } : {})

/** Refuses label references that can never match, or two included ones of a type in a scope. */
function labelRefsChecked(
  c: Checker,
  refs: readonly LabelRef[],
  path: string,
  idx: LabelIndex,
  scope: boolean,
): void {
  for (const issue of labelRefIssues(refs, idx, { oneIncludedPerType: scope }))
    c.fail(path, issue.message, scope ? 'invalid_scope' : 'invalid_actor')
}

/**
 * A scope: label and label-group entries, each maybe an exclusion; `bare` (coexistence scopes)
 * holds label references only. Returns the stored form.
 */
export function labelScope(
  c: Checker,
  list: unknown,
  path: string,
  refs: RefIndex,
  opts: { bare: boolean; max: number },
): Doc[] {
  if (!Array.isArray(list)) return c.fail(path, 'must be a list') ?? []
  const entries = list as unknown[]
  if (entries.length > opts.max) c.fail(path, `must have at most ${opts.max} entries`)
  const out: Doc[] = []
  const checked: LabelRef[] = []
  entries.forEach((x, i) => {
    const p = `${path}[${i}]`
    if (opts.bare) {
      const href = c.hrefRef(x, p)
      if (href === undefined) return
      if (!refs.labels.has(href))
        return void c.fail(p, `label ${href} does not exist`, 'invalid_label')
      out.push(refOf(href))
      checked.push({ label: href })
      return
    }
    const o = c.object(x, p)
    if (!o) return
    c.only(o, p, ['label', 'label_group', 'exclusion'])
    c.bool(o, 'exclusion', p)
    const kinds = ['label', 'label_group'].filter((k) => o[k] !== undefined)
    if (kinds.length !== 1) return void c.fail(p, 'must name exactly one of label, label_group')
    const kind = kinds[0] as 'label' | 'label_group'
    const href = c.hrefRef(o[kind], `${p}.${kind}`)
    if (href === undefined) return
    const known = kind === 'label' ? refs.labels.has(href) : refs.drafts.has(draftHref(href))
    if (!known)
      return void c.fail(
        p,
        `${kind === 'label' ? 'label' : 'label group'} ${href} does not exist`,
        `invalid_${kind}`,
      )
    out.push({ [kind]: refOf(href), ...exclusionOf(o) })
    const e = o.exclusion === true ? ({ exclusion: true } as const) : {}
    checked.push(kind === 'label' ? { label: href, ...e } : { labelGroup: draftHref(href), ...e })
  })
  if (checked.length === entries.length) labelRefsChecked(c, checked, path, refs.labelTypes, true)
  return out
}

const ACTOR_KINDS = ['actors', 'label', 'label_group', 'workload', 'ip_list', 'virtual_service']

/**
 * One side of a rule. `virtualServices`: whether the side may name virtual services (the
 * providers of an allow rule). Returns the stored form: each actor reduced to its reference.
 */
export function actors(
  c: Checker,
  list: unknown[] | undefined,
  path: string,
  refs: RefIndex,
  opts: { virtualServices: boolean },
): Doc[] {
  const out: Doc[] = []
  const labels: LabelRef[] = []
  let ams = false
  let valid = true
  ;(list ?? []).forEach((x, i) => {
    const p = `${path}[${i}]`
    const o = c.object(x, p)
    if (!o) return void (valid = false)
    c.only(o, p, [...ACTOR_KINDS, 'exclusion', 'virtual_server'])
    c.bool(o, 'exclusion', p)
    if (o.virtual_server !== undefined) {
      valid = false
      return void c.fail(
        `${p}.virtual_server`,
        'virtual servers (load balancers) are not supported: Palisade manages host firewalls only',
        NOT_ON_PLATFORM,
      )
    }
    const kinds = ACTOR_KINDS.filter((k) => o[k] !== undefined)
    if (kinds.length !== 1) {
      valid = false
      return void c.fail(p, `must name exactly one of ${ACTOR_KINDS.join(', ')}`)
    }
    const kind = kinds[0] ?? ''
    if (o.exclusion === true && kind !== 'label' && kind !== 'label_group')
      c.fail(`${p}.exclusion`, `allowed only on a label or label_group actor, not on ${kind}`)
    if (kind === 'actors') {
      if (o.actors !== 'ams') c.fail(`${p}.actors`, 'must be "ams" (all workloads)')
      ams = true
      return void out.push({ actors: 'ams' })
    }
    if (kind === 'virtual_service' && !opts.virtualServices)
      return void c.fail(
        `${p}.virtual_service`,
        'a virtual service can only be a provider of an allow rule: Palisade enforces it on the workloads bound to it',
        UNSUPPORTED,
      )
    const href = c.hrefRef(o[kind], `${p}.${kind}`)
    if (href === undefined) return void (valid = false)
    const known =
      kind === 'label'
        ? refs.labels.has(href)
        : kind === 'workload'
          ? refs.workloads.has(href)
          : refs.drafts.has(draftHref(href))
    if (!known) {
      valid = false
      return void c.fail(
        `${p}.${kind}`,
        `${kind.replace('_', ' ')} ${href} does not exist`,
        `invalid_${kind}`,
      )
    }
    out.push({ [kind]: refOf(href), ...exclusionOf(o) })
    const e = o.exclusion === true ? ({ exclusion: true } as const) : {}
    if (kind === 'label') labels.push({ label: href, ...e })
    if (kind === 'label_group') labels.push({ labelGroup: draftHref(href), ...e })
  })
  if (ams && labels.length > 0)
    c.fail(
      path,
      '"actors": "ams" (all workloads) cannot be combined with label or label-group actors: it already names every workload; remove one or the other',
      'invalid_actor',
    )
  if (valid) labelRefsChecked(c, labels, path, refs.labelTypes, false)
  return out
}

export function ingressServices(
  c: Checker,
  list: unknown[] | undefined,
  path: string,
  refs: RefIndex,
): Doc[] {
  const out: Doc[] = []
  ;(list ?? []).forEach((x, i) => {
    const p = `${path}[${i}]`
    const o = c.object(x, p)
    if (!o) return
    // a named service: only its href counts (clients may echo the service's other fields)
    if (o.href !== undefined) {
      if (typeof o.href !== 'string' || !refs.drafts.has(draftHref(o.href)))
        return void c.fail(
          p,
          `service ${typeof o.href === 'string' ? o.href : 'reference'} does not exist`,
          'invalid_service',
        )
      return void out.push(refOf(o.href))
    }
    const port = servicePort(c, o, p)
    if (port) out.push(port)
  })
  return out
}

/** The flags of the vendor's rule that need IPsec, which Palisade agents do not set up. */
const IPSEC_FLAGS = {
  sec_connect: 'Palisade agents do not set up IPsec (SecureConnect)',
  machine_auth: 'Palisade agents do not authenticate machines by certificate (IPsec)',
  stateless: 'Palisade rules are stateful (a connection allowed one way is answered)',
} as const

/**
 * Validates a rule (allow or deny) and returns its complete stored form: every accepted field,
 * with its default when left out. `update_type` is accepted and ignored (it is computed).
 */
export function checkRule(
  c: Checker,
  o: Doc,
  path: string,
  refs: RefIndex,
  kind: 'sec_rule' | 'deny_rule',
): Doc {
  const deny = kind === 'deny_rule'
  c.only(o, path, [
    'enabled',
    'description',
    'providers',
    'consumers',
    'ingress_services',
    'unscoped_consumers',
    'network_type',
    'external_data_set',
    'external_data_reference',
    'update_type',
    ...(deny
      ? ['override']
      : [
          'resolve_labels_as',
          'sec_connect',
          'stateless',
          'machine_auth',
          'use_workload_subnets',
          'consuming_security_principals',
        ]),
  ])
  c.bool(o, 'enabled', path)
  c.string(o, 'description', path, { max: 1024, nullable: true })
  c.string(o, 'external_data_set', path, { max: 255, nullable: true })
  c.string(o, 'external_data_reference', path, { max: 255, nullable: true })
  c.string(o, 'update_type', path, { max: 64, nullable: true })
  c.bool(o, 'unscoped_consumers', path)
  if (deny) c.bool(o, 'override', path)
  const network = c.oneOf(o, 'network_type', path, ['brn', 'non_brn', 'all'])
  if (network === 'non_brn')
    c.fail(
      `${path}.network_type`,
      'Palisade treats every interface as the data-centre network (brn), so a non_brn rule would match nothing; use brn or all',
      UNSUPPORTED,
    )
  const resolveAs = deny ? undefined : resolveLabelsAs(c, o, path)
  const providersAs = resolveAs?.providers ?? ['workloads']
  const providers = actors(
    c,
    c.array(o, 'providers', path, { required: true, max: 100 }),
    `${path}.providers`,
    refs,
    { virtualServices: !deny },
  )
  const consumers = actors(
    c,
    c.array(o, 'consumers', path, { required: true, max: 100 }),
    `${path}.consumers`,
    refs,
    { virtualServices: false },
  )
  const services = ingressServices(
    c,
    c.array(o, 'ingress_services', path, { max: 100 }),
    `${path}.ingress_services`,
    refs,
  )
  if (!providersAs.includes('workloads') && services.length > 0)
    c.fail(
      `${path}.ingress_services`,
      'the providers resolve as virtual services only, whose own ports apply; send []',
    )
  const common = {
    enabled: o.enabled ?? true,
    description: o.description ?? '',
    providers,
    consumers,
    ingress_services: services,
    unscoped_consumers: o.unscoped_consumers ?? false,
    network_type: network ?? 'brn',
    external_data_set: o.external_data_set ?? null,
    external_data_reference: o.external_data_reference ?? null,
  }
  if (deny) return { ...common, override: o.override ?? false }
  for (const [flag, why] of Object.entries(IPSEC_FLAGS))
    if (c.bool(o, flag, path) === true)
      c.fail(`${path}.${flag}`, `${why}; remove it or set it to false`, UNSUPPORTED)
  const principals = c.array(o, 'consuming_security_principals', path, { max: 100 })
  if (principals && principals.length > 0)
    c.fail(
      `${path}.consuming_security_principals`,
      'rules for user groups need the Windows agent; Palisade agents cannot tell users apart, and ignoring them would allow every user; send []',
      NOT_ON_PLATFORM,
    )
  return {
    ...common,
    resolve_labels_as: resolveAs ?? { providers: ['workloads'], consumers: ['workloads'] },
    sec_connect: false,
    stateless: false,
    machine_auth: false,
    use_workload_subnets: useWorkloadSubnets(c, o, path),
    consuming_security_principals: [],
  }
}

function resolveLabelsAs(
  c: Checker,
  o: Doc,
  path: string,
): { providers: string[]; consumers: string[] } | undefined {
  if (o.resolve_labels_as === undefined) return undefined
  const p = `${path}.resolve_labels_as`
  const r = c.object(o.resolve_labels_as, p)
  if (!r) return undefined
  c.only(r, p, ['providers', 'consumers'])
  const side = (key: 'providers' | 'consumers') => {
    const list = c.array(r, key, p, { required: true, max: 2 })
    if (!list) return undefined
    if (list.length === 0)
      return c.fail(`${p}.${key}`, `must name workloads, virtual_services or both`)
    const bad = list.filter((x) => !(RESOLVE_AS as readonly unknown[]).includes(x))
    if (bad.length > 0)
      return c.fail(
        `${p}.${key}`,
        `must hold only ${RESOLVE_AS.join(', ')}, not ${JSON.stringify(bad)}`,
      )
    return [...new Set(list as string[])]
  }
  const providers = side('providers')
  const consumers = side('consumers')
  if (consumers && consumers.join() !== 'workloads')
    c.fail(
      `${p}.consumers`,
      'Palisade resolves consumers as workloads only (a virtual service is a provider); send ["workloads"]',
      UNSUPPORTED,
    )
  return providers && consumers ? { providers, consumers } : undefined
}

function useWorkloadSubnets(c: Checker, o: Doc, path: string): string[] {
  const list = c.array(o, 'use_workload_subnets', path, { max: 2 })
  if (!list) return []
  const bad = list.filter((x) => !(RULE_SIDES as readonly unknown[]).includes(x))
  if (bad.length > 0)
    c.fail(
      `${path}.use_workload_subnets`,
      `must hold only ${RULE_SIDES.join(', ')}, not ${JSON.stringify(bad)}`,
    )
  return [...new Set(list.filter((x): x is string => typeof x === 'string' && !bad.includes(x)))]
}
