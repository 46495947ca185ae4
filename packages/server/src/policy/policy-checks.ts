/**
 * Provisionable policy objects in the vendor API's shapes, checked on write: every problem
 * with a body is reported at once, with references checked against what exists. Each check
 * returns what is stored, so a field is either kept (and shown, and honoured) or refused.
 */
import type { AddressEntry } from '@palisade/model'
import {
  addressSetSize,
  COEXISTENCE_WORKLOAD_MODES,
  IpParseError,
  rangeToInterval,
} from '@palisade/model'
import { draftHref } from '../hrefs.js'
import type { Checker, Doc } from '../validate.js'
import { servicePorts } from './port-checks.js'
import type { RefIndex } from './rule-checks.js'
import { actors, checkRule, ingressServices, labelScope, UNSUPPORTED } from './rule-checks.js'
import type { ObjectType } from './types.js'
import { checkVirtualService } from './virtual-service-checks.js'

export type { RefIndex } from './rule-checks.js'

/** The most CIDR blocks an IP list may expand to (each host's policy carries them all). */
export const MAX_IP_LIST_CIDRS = 50_000

/** The fields every object type has; `href` and `update_type` are echoes a client may send. */
const COMMON = ['name', 'description', 'external_data_set', 'external_data_reference']
const ECHOES = ['href', 'update_type']

/** The given fields of `o` among `keys`, as they are stored. */
const given = (o: Doc, keys: readonly string[]): Doc =>
  Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]]))

/** An inline rule of a rule set: its checked form, and the href naming the rule it replaces. */
export interface InlineRule {
  readonly href?: string
  readonly rule: Doc
}

/**
 * Validates a create (or, with `partial`, an update) of a policy object; returns the fields to
 * store. For rule sets, inline `rules` and `deny_rules` are returned checked, under `inline`.
 */
export function checkPolicyObject(
  c: Checker,
  type: ObjectType,
  o: Doc,
  refs: RefIndex,
  partial: boolean,
): { fields: Doc; inline?: Partial<Record<'rules' | 'deny_rules', InlineRule[]>> } {
  const p = '$'
  const req = { required: !partial }
  c.string(o, 'name', p, { ...req, max: 255 })
  c.string(o, 'description', p, { max: 1024, nullable: true })
  c.string(o, 'external_data_set', p, { max: 255, nullable: true })
  c.string(o, 'external_data_reference', p, { max: 255, nullable: true })
  c.string(o, 'update_type', p, { max: 64, nullable: true })
  if (o.href !== undefined && !partial)
    c.fail(`${p}.href`, 'is assigned by the server; leave it out')
  const common = given(o, COMMON)
  switch (type) {
    case 'ip_lists': {
      c.only(o, p, [...COMMON, ...ECHOES, 'ip_ranges', 'fqdns'])
      const ranges = c.array(o, 'ip_ranges', p, { max: 10_000 }) ?? []
      const parsed: AddressEntry[] = []
      ranges.forEach((x, i) => {
        const q = `${p}.ip_ranges[${i}]`
        const r = c.object(x, q)
        if (!r) return
        c.only(r, q, ['from_ip', 'to_ip', 'exclusion', 'description'])
        const from = c.string(r, 'from_ip', q, { required: true, max: 64 })
        const to = c.string(r, 'to_ip', q, { max: 64 })
        const exclusion = c.bool(r, 'exclusion', q)
        if (from === undefined) return
        try {
          rangeToInterval(from, to)
          parsed.push({ from, ...(to !== undefined && { to }), exclusion: exclusion === true })
        } catch (e) {
          if (e instanceof IpParseError) c.fail(q, e.message, 'invalid_ip_range')
          else throw e
        }
      })
      const cidrs = addressSetSize(parsed, MAX_IP_LIST_CIDRS)
      if (cidrs > MAX_IP_LIST_CIDRS)
        c.fail(
          `${p}.ip_ranges`,
          `expands to more than ${MAX_IP_LIST_CIDRS.toLocaleString('en')} CIDR blocks, which every host's policy would carry; split it into smaller lists or use wider CIDRs`,
          'ip_list_too_large',
        )
      c.array(o, 'fqdns', p, { max: 1000 })
      return { fields: { ...common, ...given(o, ['ip_ranges', 'fqdns']) } }
    }
    case 'services':
      c.only(o, p, [
        ...COMMON,
        ...ECHOES,
        'service_ports',
        'process_name',
        'windows_services',
        'windows_egress_services',
        'risk_details',
      ])
      servicePorts(c, c.array(o, 'service_ports', p, { max: 1000 }), `${p}.service_ports`)
      c.string(o, 'process_name', p, { max: 255, nullable: true })
      windowsServices(c, o)
      if (o.risk_details !== undefined && o.risk_details !== null)
        c.object(o.risk_details, `${p}.risk_details`)
      return {
        fields: {
          ...common,
          ...given(o, [
            'service_ports',
            'process_name',
            'windows_services',
            'windows_egress_services',
            'risk_details',
          ]),
        },
      }
    case 'label_groups': {
      c.only(o, p, [...COMMON, ...ECHOES, 'key', 'labels', 'sub_groups'])
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
      return { fields: { ...common, ...given(o, ['key', 'labels', 'sub_groups']) } }
    }
    case 'rule_sets': {
      c.only(o, p, [
        ...COMMON,
        ...ECHOES,
        'enabled',
        'scopes',
        'rules',
        'deny_rules',
        'ip_tables_rules',
      ])
      c.bool(o, 'enabled', p)
      const scopes = (c.array(o, 'scopes', p, { max: 500 }) ?? []).map((s, i) =>
        labelScope(c, s, `${p}.scopes[${i}]`, refs, { bare: false, max: 16 }),
      )
      const iptables = c.array(o, 'ip_tables_rules', p, { max: 1000 })
      if (iptables && iptables.length > 0)
        c.fail(
          `${p}.ip_tables_rules`,
          "custom iptables rules are not applied: Palisade coexists with the host's own firewall rules instead (docs/coexistence.md); send []",
          UNSUPPORTED,
        )
      const inline = (field: 'rules' | 'deny_rules') => {
        const list = c.array(o, field, p, { max: 10_000 })
        if (!list) return undefined
        return list.flatMap((x, i): InlineRule[] => {
          const q = `${p}.${field}[${i}]`
          const r = c.object(x, q)
          if (!r) return []
          const { href, ...body } = r
          if (href !== undefined && typeof href !== 'string')
            c.fail(`${q}.href`, 'must be the href of a rule of this rule set')
          const rule = checkRule(c, body, q, refs, field === 'rules' ? 'sec_rule' : 'deny_rule')
          return [{ ...(typeof href === 'string' && { href }), rule }]
        })
      }
      const rules = inline('rules')
      const denyRules = inline('deny_rules')
      return {
        fields: {
          ...common,
          ...given(o, ['enabled']),
          ...(o.scopes !== undefined && { scopes }),
          ...(iptables && { ip_tables_rules: [] }),
        },
        inline: { ...(rules && { rules }), ...(denyRules && { deny_rules: denyRules }) },
      }
    }
    case 'enforcement_boundaries': {
      c.only(o, p, [...COMMON, ...ECHOES, 'enabled', 'providers', 'consumers', 'ingress_services'])
      c.bool(o, 'enabled', p)
      const side = (key: 'providers' | 'consumers') =>
        o[key] === undefined && partial
          ? undefined
          : actors(c, c.array(o, key, p, req), `${p}.${key}`, refs, { virtualServices: false })
      const providers = side('providers')
      const consumers = side('consumers')
      const services =
        o.ingress_services === undefined && partial
          ? undefined
          : ingressServices(
              c,
              c.array(o, 'ingress_services', p, req),
              `${p}.ingress_services`,
              refs,
            )
      return {
        fields: {
          ...common,
          ...given(o, ['enabled']),
          ...(providers && { providers }),
          ...(consumers && { consumers }),
          ...(services && { ingress_services: services }),
        },
      }
    }
    case 'virtual_services':
      return {
        fields: { ...common, ...checkVirtualService(c, o, refs, partial, [...COMMON, ...ECHOES]) },
      }
  }
}

/** Windows-only service fields: checked and stored; Linux agents do not match them. */
function windowsServices(c: Checker, o: Doc): void {
  const p = '$'
  ;(c.array(o, 'windows_services', p, { max: 1000 }) ?? []).forEach((x, i) => {
    const q = `${p}.windows_services[${i}]`
    const w = c.object(x, q)
    if (!w) return
    c.only(w, q, [
      'service_name',
      'process_name',
      'port',
      'to_port',
      'proto',
      'icmp_type',
      'icmp_code',
    ])
    c.string(w, 'service_name', q, { max: 255 })
    c.string(w, 'process_name', q, { max: 255 })
    c.int(w, 'proto', q, { min: -1, max: 255 })
    for (const k of ['port', 'to_port']) c.int(w, k, q, { min: -1, max: 65535 })
    for (const k of ['icmp_type', 'icmp_code']) c.int(w, k, q, { min: 0, max: 255, nullable: true })
  })
  ;(c.array(o, 'windows_egress_services', p, { max: 1000 }) ?? []).forEach((x, i) => {
    const q = `${p}.windows_egress_services[${i}]`
    const w = c.object(x, q)
    if (!w) return
    c.only(w, q, ['service_name', 'process_name'])
    const name = c.string(w, 'service_name', q, { max: 255 })
    const process = c.string(w, 'process_name', q, { max: 255 })
    if (name === undefined && process === undefined)
      c.fail(q, 'must name a service_name or a process_name')
  })
}

/** The firewall-settings keys that name scopes Palisade has no behaviour for: only [] is taken. */
const EMPTY_ONLY_SCOPES = {
  static_policy_scopes:
    'Palisade applies policy as soon as it is provisioned (no static policy mode)',
  containers_inherit_host_policy_scopes: 'Palisade agents do not program container networks',
  ip_forwarding_enabled_scopes:
    "Palisade decides forwarded traffic by the workload's enforcement mode (docs/coexistence.md)",
  rule_hit_count_enabled_scopes: 'Palisade agents do not count rule hits (they report flows)',
} as const

/**
 * Validates a partial update of the firewall settings; returns the fields to store. Only the
 * vendor's documented keys are taken; one Palisade cannot honour takes only its no-op value.
 */
export function checkFirewallSettings(c: Checker, o: Doc, refs: RefIndex): Doc {
  const p = '$'
  c.only(o, p, [
    'firewall_coexistence',
    'blocked_connection_reject_scopes',
    'loopback_interfaces_in_policy_scopes',
    'ike_authentication_type',
    'allow_captive_portal_outbound',
    ...Object.keys(EMPTY_ONLY_SCOPES),
    ...ECHOES,
  ])
  c.string(o, 'update_type', p, { max: 64, nullable: true })
  const out: Doc = {}
  const coexistence = c.array(o, 'firewall_coexistence', p, { max: 500, nullable: true })
  if (o.firewall_coexistence !== undefined)
    out.firewall_coexistence = (coexistence ?? []).flatMap((x, i) => {
      const q = `${p}.firewall_coexistence[${i}]`
      const item = c.object(x, q)
      if (!item) return []
      c.only(item, q, ['scope', 'illumio_primary', 'workload_mode'])
      c.bool(item, 'illumio_primary', q, { required: true })
      const mode = c.oneOf(item, 'workload_mode', q, COEXISTENCE_WORKLOAD_MODES)
      const scope = labelScope(c, item.scope ?? [], `${q}.scope`, refs, { bare: true, max: 4 })
      return [
        { scope, illumio_primary: item.illumio_primary, ...(mode && { workload_mode: mode }) },
      ]
    })
  for (const key of ['blocked_connection_reject_scopes', 'loopback_interfaces_in_policy_scopes']) {
    const scopes = c.array(o, key, p, { max: 500 })
    if (scopes)
      out[key] = scopes.map((s, i) =>
        labelScope(c, s, `${p}.${key}[${i}]`, refs, { bare: false, max: 16 }),
      )
  }
  for (const [key, why] of Object.entries(EMPTY_ONLY_SCOPES)) {
    const scopes = c.array(o, key, p, { max: 500 })
    if (!scopes) continue
    if (scopes.length > 0) c.fail(`${p}.${key}`, `${why}; send []`, UNSUPPORTED)
    out[key] = []
  }
  const ike = c.oneOf(o, 'ike_authentication_type', p, ['psk', 'certificate'])
  if (ike) out.ike_authentication_type = ike
  const portal = c.bool(o, 'allow_captive_portal_outbound', p)
  if (portal)
    c.fail(
      `${p}.allow_captive_portal_outbound`,
      'Palisade agents do not detect captive portals; send false',
      UNSUPPORTED,
    )
  if (portal !== undefined) out.allow_captive_portal_outbound = false
  return out
}
