/**
 * Provisionable policy objects in the vendor API's shapes, checked on write: every problem
 * with a body is reported at once, with references checked against what exists.
 */
import type { ServicePort } from '@palisade/model'
import {
  addressSetOf,
  checkServicePort,
  COEXISTENCE_WORKLOAD_MODES,
  IpParseError,
} from '@palisade/model'
import { draftHref } from '../hrefs.js'
import type { Checker, Doc } from '../validate.js'
import { isObj } from '../validate.js'
import type { ObjectType } from './types.js'

/** What exists, for checking references: label hrefs, and draft hrefs per policy type. */
export interface RefIndex {
  readonly labels: ReadonlyMap<string, { key: string }>
  readonly drafts: ReadonlySet<string>
  readonly workloads: ReadonlySet<string>
}

function servicePorts(c: Checker, list: unknown[] | undefined, path: string): Doc[] {
  const out: Doc[] = []
  ;(list ?? []).forEach((x, i) => {
    const p = `${path}[${i}]`
    const o = c.object(x, p)
    if (!o) return
    c.only(o, p, ['port', 'to_port', 'proto', 'icmp_type', 'icmp_code'])
    const proto = c.int(o, 'proto', p, { required: true, min: -1, max: 255 })
    const sp: ServicePort = { proto: proto ?? 0, ...portFields(c, o, p) }
    if (proto !== undefined) for (const issue of checkServicePort(sp)) c.fail(p, issue.message)
    out.push(o)
  })
  return out
}

function portFields(c: Checker, o: Doc, p: string): Omit<ServicePort, 'proto'> {
  const port = c.int(o, 'port', p, { min: 0, max: 65535 })
  const toPort = c.int(o, 'to_port', p, { min: 0, max: 65535 })
  const icmpType = c.int(o, 'icmp_type', p, { min: 0, max: 255 })
  const icmpCode = c.int(o, 'icmp_code', p, { min: 0, max: 255 })
  return {
    ...(port !== undefined && { port }),
    ...(toPort !== undefined && { toPort }),
    ...(icmpType !== undefined && { icmpType }),
    ...(icmpCode !== undefined && { icmpCode }),
  }
}

function labelScope(
  c: Checker,
  list: unknown,
  path: string,
  refs: RefIndex,
  opts: { bare: boolean; max: number },
): void {
  if (!Array.isArray(list)) return void c.fail(path, 'must be a list')
  const entries = list as unknown[]
  if (entries.length > opts.max) c.fail(path, `must have at most ${opts.max} entries`)
  const keys = new Map<string, string>()
  entries.forEach((x, i) => {
    const p = `${path}[${i}]`
    // firewall_coexistence scopes are bare {href}; other scopes wrap {label: {href}}.
    const inner = opts.bare ? x : isObj(x) ? (x.label ?? x.label_group) : undefined
    const href = c.hrefRef(inner, opts.bare ? p : `${p}.label`)
    if (href === undefined) return
    const isGroup = !opts.bare && isObj(x) && x.label_group !== undefined
    if (isGroup) {
      if (!refs.drafts.has(draftHref(href)))
        c.fail(p, `label group ${href} does not exist`, 'invalid_label_group')
      return
    }
    const label = refs.labels.get(href)
    if (!label) return void c.fail(p, `label ${href} does not exist`, 'invalid_label')
    const other = keys.get(label.key)
    if (other)
      c.fail(
        p,
        `a scope may hold one label per key; ${other} and ${href} are both "${label.key}"`,
        'invalid_scope',
      )
    keys.set(label.key, href)
  })
}

function actors(c: Checker, list: unknown[] | undefined, path: string, refs: RefIndex): void {
  ;(list ?? []).forEach((x, i) => {
    const p = `${path}[${i}]`
    const o = c.object(x, p)
    if (!o) return
    const kinds = ['actors', 'label', 'label_group', 'workload', 'ip_list'].filter(
      (k) => o[k] !== undefined,
    )
    if (kinds.length !== 1)
      return void c.fail(
        p,
        'must name exactly one of actors, label, label_group, workload, ip_list',
      )
    const kind = kinds[0] ?? ''
    if (kind === 'actors') {
      if (o.actors !== 'ams') c.fail(`${p}.actors`, 'must be "ams" (all workloads)')
      return
    }
    const href = c.hrefRef(o[kind], `${p}.${kind}`)
    if (href === undefined) return
    const known =
      kind === 'label'
        ? refs.labels.has(href)
        : kind === 'workload'
          ? refs.workloads.has(href)
          : refs.drafts.has(draftHref(href))
    if (!known)
      c.fail(`${p}.${kind}`, `${kind.replace('_', ' ')} ${href} does not exist`, `invalid_${kind}`)
  })
}

function ingressServices(
  c: Checker,
  list: unknown[] | undefined,
  path: string,
  refs: RefIndex,
): void {
  ;(list ?? []).forEach((x, i) => {
    const p = `${path}[${i}]`
    const o = c.object(x, p)
    if (!o) return
    if (o.href !== undefined) {
      if (typeof o.href !== 'string' || !refs.drafts.has(draftHref(o.href)))
        c.fail(
          p,
          `service ${typeof o.href === 'string' ? o.href : 'reference'} does not exist`,
          'invalid_service',
        )
      return
    }
    servicePorts(c, [o], path.replace(/\[\d+\]$/, '') + `[${i}]`)
  })
}

/** Validates a rule (allow or deny); `deny` adds `override`. Returns the stored form. */
export function checkRule(c: Checker, o: Doc, path: string, refs: RefIndex, deny: boolean): Doc {
  c.only(o, path, [
    'enabled',
    'description',
    'providers',
    'consumers',
    'ingress_services',
    'unscoped_consumers',
    ...(deny ? ['override'] : ['resolve_labels_as', 'sec_connect', 'stateless', 'machine_auth']),
    'external_data_set',
    'external_data_reference',
  ])
  c.bool(o, 'enabled', path)
  c.string(o, 'description', path, { max: 1024, nullable: true })
  c.bool(o, 'unscoped_consumers', path)
  if (deny) c.bool(o, 'override', path)
  actors(c, c.array(o, 'providers', path, { required: true, max: 100 }), `${path}.providers`, refs)
  actors(c, c.array(o, 'consumers', path, { required: true, max: 100 }), `${path}.consumers`, refs)
  ingressServices(
    c,
    c.array(o, 'ingress_services', path, { max: 100 }),
    `${path}.ingress_services`,
    refs,
  )
  return {
    enabled: o.enabled ?? true,
    description: o.description ?? '',
    providers: o.providers,
    consumers: o.consumers,
    ingress_services: o.ingress_services ?? [],
    unscoped_consumers: o.unscoped_consumers ?? false,
    ...(deny
      ? { override: o.override ?? false }
      : {
          resolve_labels_as: o.resolve_labels_as ?? {
            providers: ['workloads'],
            consumers: ['workloads'],
          },
        }),
  }
}

/** Validates a create (or, with `partial`, an update) of a policy object; returns its stored fields. */
export function checkPolicyObject(
  c: Checker,
  type: ObjectType,
  o: Doc,
  refs: RefIndex,
  partial: boolean,
): Doc {
  const p = '$'
  const req = { required: !partial }
  const common = ['name', 'description', 'external_data_set', 'external_data_reference']
  c.string(o, 'name', p, { ...req, max: 255 })
  c.string(o, 'description', p, { max: 1024, nullable: true })
  c.string(o, 'external_data_set', p, { max: 255, nullable: true })
  c.string(o, 'external_data_reference', p, { max: 255, nullable: true })
  switch (type) {
    case 'ip_lists': {
      c.only(o, p, [...common, 'ip_ranges', 'fqdns'])
      const ranges = c.array(o, 'ip_ranges', p, { max: 10_000 }) ?? []
      ranges.forEach((x, i) => {
        const q = `${p}.ip_ranges[${i}]`
        const r = c.object(x, q)
        if (!r) return
        c.only(r, q, ['from_ip', 'to_ip', 'exclusion', 'description'])
        const from = c.string(r, 'from_ip', q, { required: true, max: 64 })
        const to = c.string(r, 'to_ip', q, { max: 64 })
        c.bool(r, 'exclusion', q)
        if (from === undefined) return
        try {
          addressSetOf([{ from, ...(to !== undefined && { to }) }])
        } catch (e) {
          if (e instanceof IpParseError) c.fail(q, e.message, 'invalid_ip_range')
          else throw e
        }
      })
      c.array(o, 'fqdns', p, { max: 1000 })
      return o
    }
    case 'services':
      c.only(o, p, [...common, 'service_ports', 'process_name', 'windows_services'])
      servicePorts(c, c.array(o, 'service_ports', p, { max: 1000 }), `${p}.service_ports`)
      return o
    case 'label_groups': {
      c.only(o, p, [...common, 'key', 'labels', 'sub_groups'])
      const key = c.string(o, 'key', p, { ...req, max: 64 })
      ;(c.array(o, 'labels', p, { max: 10_000 }) ?? []).forEach((x, i) => {
        const href = c.hrefRef(x, `${p}.labels[${i}]`)
        const label = href === undefined ? undefined : refs.labels.get(href)
        if (href !== undefined && !label)
          c.fail(`${p}.labels[${i}]`, `label ${href} does not exist`, 'invalid_label')
        if (label && key !== undefined && label.key !== key)
          c.fail(
            `${p}.labels[${i}]`,
            `label ${href} is "${label.key}", the group is "${key}"`,
            'invalid_label',
          )
      })
      ;(c.array(o, 'sub_groups', p, { max: 1000 }) ?? []).forEach((x, i) => {
        const href = c.hrefRef(x, `${p}.sub_groups[${i}]`)
        if (href !== undefined && !refs.drafts.has(draftHref(href)))
          c.fail(
            `${p}.sub_groups[${i}]`,
            `label group ${href} does not exist`,
            'invalid_label_group',
          )
      })
      return o
    }
    case 'rule_sets':
      c.only(o, p, [...common, 'enabled', 'scopes', 'rules', 'deny_rules', 'ip_tables_rules'])
      c.bool(o, 'enabled', p)
      ;(c.array(o, 'scopes', p, { max: 500 }) ?? []).forEach((s, i) =>
        labelScope(c, s, `${p}.scopes[${i}]`, refs, { bare: false, max: 4 }),
      )
      if (o.rules !== undefined) c.fail(`${p}.rules`, 'create rules with POST {rule_set}/sec_rules')
      if (o.deny_rules !== undefined)
        c.fail(`${p}.deny_rules`, 'create deny rules with POST {rule_set}/deny_rules')
      return o
    case 'enforcement_boundaries':
      c.only(o, p, [...common, 'enabled', 'providers', 'consumers', 'ingress_services'])
      c.bool(o, 'enabled', p)
      actors(c, c.array(o, 'providers', p, req), `${p}.providers`, refs)
      actors(c, c.array(o, 'consumers', p, req), `${p}.consumers`, refs)
      ingressServices(c, c.array(o, 'ingress_services', p, req), `${p}.ingress_services`, refs)
      return o
  }
}

/** Validates a partial update of the firewall settings; unknown fields are kept, as the vendor does. */
export function checkFirewallSettings(c: Checker, o: Doc, refs: RefIndex): void {
  const p = '$'
  ;(c.array(o, 'firewall_coexistence', p, { max: 500 }) ?? []).forEach((x, i) => {
    const q = `${p}.firewall_coexistence[${i}]`
    const item = c.object(x, q)
    if (!item) return
    c.only(item, q, ['scope', 'illumio_primary', 'workload_mode'])
    c.bool(item, 'illumio_primary', q, { required: true })
    c.oneOf(item, 'workload_mode', q, COEXISTENCE_WORKLOAD_MODES)
    labelScope(c, item.scope ?? [], `${q}.scope`, refs, { bare: true, max: 4 })
  })
  for (const key of [
    'blocked_connection_reject_scopes',
    'loopback_interfaces_in_policy_scopes',
    'static_policy_scopes',
    'containers_inherit_host_policy_scopes',
  ]) {
    ;(c.array(o, key, p, { max: 500 }) ?? []).forEach((s, i) =>
      labelScope(c, s, `${p}.${key}[${i}]`, refs, { bare: false, max: 4 }),
    )
  }
  c.oneOf(o, 'ike_authentication_type', p, ['psk', 'certificate'])
  for (const key of ['href', 'update_type', 'created_at', 'updated_at', 'created_by', 'updated_by'])
    if (o[key] !== undefined && key !== 'href') c.fail(`${p}.${key}`, 'is read-only')
}
