/**
 * The one schema of a host policy, for every way one reaches an agent: from its policy server
 * (the computed form, `HostPolicy` as JSON) and from a local policy file (the form people write,
 * see local-policy.ts). Both go through the same checks for what they share: rule actions and
 * directions, service ports, peer addresses (re-parsed and re-formatted, never taken as sent),
 * enforcement and visibility, and the same bounds.
 */
import type { Checked, Doc } from './check.js'
import { Checker, isObj } from './check.js'
import { COEXISTENCE_MODES } from './firewall-settings.js'
import type { DocRule, HostPolicy, HostRule, PolicyDoc, RuleAction, SetRef } from './host-policy.js'
import { RULE_ACTIONS } from './host-policy.js'
import type { AddressSet, Interval, IpFamily } from './ip.js'
import { cidrToInterval, intervalsToCidrs, IpParseError, mergeCidrs } from './ip.js'
import type { ModeReason, ModeResolution } from './mode.js'
import type { ServicePort } from './service.js'
import { checkServicePort, normaliseServicePorts } from './service.js'
import { ENFORCEMENT_MODES, VISIBILITY_LEVELS } from './workload.js'

/**
 * What one host policy may hold at most: far above what a real host needs (a host with 100,000
 * peers in each of a few rules passes), far below what would exhaust an agent.
 */
export const HOST_POLICY_LIMITS = {
  /** Rules in one policy. */
  rules: 100_000,
  /** Service ports in one rule. */
  servicesPerRule: 10_000,
  /** Peer entries (CIDRs, addresses, ranges) in one rule, both families together. */
  peersPerRule: 1_000_000,
  /** Peer entries in the whole policy. */
  peers: 4_000_000,
  /** Characters in one peer entry (the longest IPv6 range is 91). */
  peer: 100,
  /** Characters in a rule key, a rule href and the workload's href. */
  ref: 1024,
  /** Characters in the workload's name. */
  name: 255,
  /** The highest policy version. */
  version: 2 ** 31 - 1,
  /** Firewall-coexistence items a mode reason may name. */
  scopeItems: 10_000,
} as const

export const DIRECTIONS = ['inbound', 'outbound'] as const
const PLATFORMS = ['darwin', 'solaris', 'aix'] as const
const MODE_REASONS = ['endpoint', 'platform', 'scope', 'no_match'] as const

/** How a form of the policy names the fields of a service port that are not `proto`, `port`. */
export interface ServicePortKeys {
  readonly toPort: string
  readonly icmpType: string
  readonly icmpCode: string
}
const WIRE_SERVICE_KEYS: ServicePortKeys = {
  toPort: 'toPort',
  icmpType: 'icmpType',
  icmpCode: 'icmpCode',
}

const isWhole = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x)
const isByte = (x: number | undefined) => x === undefined || (isWhole(x) && x >= 0 && x <= 255)

/** A rule's action and direction. */
export function ruleHeadOf(
  c: Checker,
  r: Doc,
  at: string,
): { action: RuleAction; direction: HostRule['direction'] } | undefined {
  const action = c.oneOf(r, 'action', at, RULE_ACTIONS, { required: true })
  const direction = c.oneOf(r, 'direction', at, DIRECTIONS, { required: true })
  return action && direction ? { action, direction } : undefined
}

/**
 * A rule's service ports: a non-empty list, every port checked, then normalised (sorted, without
 * repeats). Each problem is reported at the service port it is in.
 */
export function servicePortsOf(
  c: Checker,
  list: unknown,
  at: string,
  keys: ServicePortKeys,
): ServicePort[] | undefined {
  if (!Array.isArray(list) || list.length === 0)
    return c.fail(at, 'must be a non-empty list like [{"proto": 6, "port": 22}]')
  if (list.length > HOST_POLICY_LIMITS.servicesPerRule)
    return c.fail(at, `must have at most ${HOST_POLICY_LIMITS.servicesPerRule} entries`)
  const before = c.issues.length
  const names: Record<keyof ServicePort, string> = { proto: 'proto', port: 'port', ...keys }
  const out: ServicePort[] = []
  list.forEach((s: unknown, j) => {
    const p = `${at}[${j}]`
    if (!isObj(s)) return void c.fail(p, 'must be an object')
    c.only(s, p, Object.values(names))
    const numbers: Partial<Record<keyof ServicePort, number>> = {}
    for (const [field, name] of Object.entries(names) as [keyof ServicePort, string][]) {
      const v = s[name]
      if (typeof v === 'number') numbers[field] = v
      else if (v !== undefined || field === 'proto') c.fail(p, `${name} must be a number`)
    }
    const { proto, ...rest } = numbers
    if (proto === undefined) return
    const sp: ServicePort = { proto, ...rest }
    for (const issue of checkServicePort(sp)) c.fail(p, issue.message)
    if (!isByte(sp.icmpType) || !isByte(sp.icmpCode))
      c.fail(p, `${keys.icmpType} and ${keys.icmpCode} must be whole numbers from 0 to 255`)
    out.push(sp)
  })
  return c.issues.length === before ? normaliseServicePorts(out) : undefined
}

/** Counts peer entries against the policy's bound as rules are checked. */
export class PeerBudget {
  #left: number = HOST_POLICY_LIMITS.peers

  take(c: Checker, n: number, at: string): boolean {
    this.#left -= n
    if (n > HOST_POLICY_LIMITS.peersPerRule)
      c.fail(at, `must have at most ${HOST_POLICY_LIMITS.peersPerRule} entries`)
    else if (this.#left < 0)
      c.fail(at, `the policy may have at most ${HOST_POLICY_LIMITS.peers} peer entries`)
    else return true
    return false
  }
}

/**
 * Rules, checked one by one with `ruleOf`, then ordered as the model orders them: override-deny,
 * allow, deny (each group as it came). Keys must be unique: sets are named after them.
 */
export function rulesOf<R extends Pick<HostRule, 'key' | 'action'>>(
  c: Checker,
  list: unknown,
  at: string,
  ruleOf: (r: Doc, at: string, i: number) => R | undefined,
): R[] | undefined {
  if (!Array.isArray(list)) return c.fail(at, 'must be a list')
  if (list.length > HOST_POLICY_LIMITS.rules)
    return c.fail(at, `must have at most ${HOST_POLICY_LIMITS.rules} entries`)
  const rules: R[] = []
  const keys = new Set<string>()
  list.forEach((r: unknown, i) => {
    const p = `${at}[${i}]`
    if (!isObj(r)) return void c.fail(p, 'must be an object')
    const rule = ruleOf(r, p, i)
    if (!rule) return
    if (keys.has(rule.key)) c.fail(`${p}.key`, `repeats the key of an earlier rule (${rule.key})`)
    keys.add(rule.key)
    rules.push(rule)
  })
  const order = (a: RuleAction) => RULE_ACTIONS.indexOf(a)
  return rules.sort((a, b) => order(a.action) - order(b.action))
}

/** A shared set's content id: 128 bits of a SHA-256, in lower-case hexadecimal. */
const SET_ID = /^[0-9a-f]{32}$/

export const setIdOf = (c: Checker, x: unknown, at: string): string | undefined =>
  typeof x === 'string' && SET_ID.test(x)
    ? x
    : c.fail(at, 'must be a set id (32 lower-case hexadecimal digits)')

/**
 * A rule's peers as the agent channel sends them: `"any"`, the addresses written out, or (where
 * `refs`) `{"set": ID}`, a shared set the agent resolves.
 */
function wirePeersOf(
  c: Checker,
  x: unknown,
  at: string,
  budget: PeerBudget,
  refs: boolean,
): AddressSet | 'any' | SetRef | undefined {
  if (x === 'any') return 'any'
  if (refs && isObj(x) && 'set' in x) {
    c.only(x, at, ['set'])
    const id = setIdOf(c, x.set, `${at}.set`)
    return id === undefined ? undefined : { set: id }
  }
  if (!isObj(x))
    return c.fail(
      at,
      `must be "any"${refs ? ', {"set": ID}' : ''} or {"v4": [CIDR, ...], "v6": [CIDR, ...]}`,
    )
  return wireAddressSetOf(c, x, at, budget)
}

/**
 * `{"v4": [CIDR...], "v6": [CIDR...]}` with each CIDR in its own family's list, re-parsed and
 * returned in the model's form (sorted, merged): what a host policy or a shared set holds.
 */
export function wireAddressSetOf(
  c: Checker,
  x: unknown,
  at: string,
  budget: PeerBudget,
): AddressSet | undefined {
  if (!isObj(x)) return c.fail(at, 'must be {"v4": [CIDR, ...], "v6": [CIDR, ...]}')
  c.only(x, at, ['v4', 'v6'])
  const v4 = c.array(x, 'v4', at, { required: true, max: HOST_POLICY_LIMITS.peersPerRule })
  const v6 = c.array(x, 'v6', at, { required: true, max: HOST_POLICY_LIMITS.peersPerRule })
  if (!v4 || !v6 || !budget.take(c, v4.length + v6.length, at)) return undefined
  const family = (list: unknown[], fam: IpFamily): string[] | undefined => {
    const merged = mergedAsFamily(list, fam)
    if (merged) return merged
    // Not all of the family, or one does not parse: one by one, to say which and why.
    const intervals: Interval[] = []
    for (const [i, entry] of list.entries()) {
      const p = `${at}.v${fam}[${i}]`
      if (typeof entry !== 'string' || entry.length > HOST_POLICY_LIMITS.peer)
        return c.fail(p, `must be an IPv${fam} CIDR`)
      try {
        const parsed = cidrToInterval(entry)
        if (parsed.family !== fam) return c.fail(p, `must be an IPv${fam} CIDR`)
        intervals.push(parsed.interval)
      } catch (e) {
        if (e instanceof IpParseError) return c.fail(p, e.message)
        throw e
      }
    }
    return intervalsToCidrs(fam, intervals)
  }
  const out4 = family(v4, 4)
  const out6 = family(v6, 6)
  return out4 && out6 ? { v4: out4, v6: out6 } : undefined
}

/**
 * `list` normalised as `intervalsToCidrs` would (see mergeCidrs: IPv4 in plain numbers, single
 * IPv6 addresses in order without a bigint each; an object and two bigints per address cost a
 * policy of 100,000 peers half a second, its agent's event loop held meanwhile), where every
 * entry is text of the family (`:` is in every IPv6 address and in no IPv4 one) within the
 * length allowed, and parses; undefined otherwise.
 */
function mergedAsFamily(list: unknown[], fam: IpFamily): string[] | undefined {
  const ofFamily = (e: unknown): e is string =>
    typeof e === 'string' && e.length <= HOST_POLICY_LIMITS.peer && e.includes(':') === (fam === 6)
  if (!list.every(ofFamily)) return undefined
  try {
    return mergeCidrs(fam, list)
  } catch (e) {
    if (e instanceof IpParseError) return undefined
    throw e
  }
}

function modeReasonOf(c: Checker, x: unknown, at: string): ModeReason | undefined {
  const o = c.object(x, at)
  const kind = o && c.oneOf(o, 'kind', at, MODE_REASONS, { required: true })
  if (!o || !kind) return undefined
  switch (kind) {
    case 'endpoint':
    case 'no_match':
      c.only(o, at, ['kind'])
      return { kind }
    case 'platform': {
      c.only(o, at, ['kind', 'platform'])
      const platform = c.oneOf(o, 'platform', at, PLATFORMS, { required: true })
      return platform && { kind, platform }
    }
    case 'scope': {
      c.only(o, at, ['kind', 'items'])
      const items = c.array(o, 'items', at, { required: true, max: HOST_POLICY_LIMITS.scopeItems })
      const whole = items?.filter((n): n is number => isWhole(n) && n >= 0)
      if (!whole || whole.length !== items?.length)
        return items && c.fail(`${at}.items`, 'must be a list of whole numbers from 0')
      return { kind, items: whole }
    }
  }
}

function modeOf(c: Checker, x: unknown, at: string): ModeResolution | undefined {
  const o = c.object(x, at)
  if (!o) return undefined
  c.only(o, at, ['mode', 'applied', 'reason'])
  const mode = c.oneOf(o, 'mode', at, COEXISTENCE_MODES, { required: true })
  const applied = c.bool(o, 'applied', at, { required: true })
  const reason = modeReasonOf(c, o.reason, `${at}.reason`)
  return mode && applied !== undefined && reason ? { mode, applied, reason } : undefined
}

const POLICY_KEYS = [
  'version',
  'workload',
  'enforcementMode',
  'visibilityLevel',
  'mode',
  'rejectBlocked',
  'loopbackInPolicy',
  'rules',
]
const RULE_KEYS = ['key', 'ruleHref', 'action', 'direction', 'peers', 'services']

/**
 * A host policy as its server sends it (the JSON of `HostPolicy`), checked field by field; the
 * value returned is built from what was checked, addresses re-formatted, never the input itself.
 */
export function hostPolicyOf(c: Checker, x: unknown, at: string): HostPolicy | undefined {
  return policyOf(c, x, at, false) as HostPolicy | undefined
}

/** A host policy as the agent channel carries it: like `hostPolicyOf`, and shared sets by id. */
export function policyDocOf(c: Checker, x: unknown, at: string): PolicyDoc | undefined {
  return policyOf(c, x, at, true)
}

function policyOf(c: Checker, x: unknown, at: string, refs: boolean): PolicyDoc | undefined {
  const o = c.object(x, at)
  if (!o) return undefined
  const before = c.issues.length
  c.only(o, at, POLICY_KEYS)
  const version = c.int(o, 'version', at, {
    required: true,
    min: 0,
    max: HOST_POLICY_LIMITS.version,
  })
  const workload = workloadOf(c, o.workload, `${at}.workload`)
  const enforcementMode = c.oneOf(o, 'enforcementMode', at, ENFORCEMENT_MODES, { required: true })
  const visibilityLevel = c.oneOf(o, 'visibilityLevel', at, VISIBILITY_LEVELS, { required: true })
  const mode = modeOf(c, o.mode, `${at}.mode`)
  const rejectBlocked = c.bool(o, 'rejectBlocked', at, { required: true })
  const loopbackInPolicy = c.bool(o, 'loopbackInPolicy', at, { required: true })
  const budget = new PeerBudget()
  const rules = rulesOf(c, o.rules, `${at}.rules`, (r, p): DocRule | undefined => {
    c.only(r, p, RULE_KEYS)
    const key = c.string(r, 'key', p, { required: true, max: HOST_POLICY_LIMITS.ref })
    const ruleHref = c.string(r, 'ruleHref', p, { required: true, max: HOST_POLICY_LIMITS.ref })
    const head = ruleHeadOf(c, r, p)
    const peers = wirePeersOf(c, r.peers, `${p}.peers`, budget, refs)
    const services = servicePortsOf(c, r.services, `${p}.services`, WIRE_SERVICE_KEYS)
    if (key === undefined || ruleHref === undefined || !head || !peers || !services) return
    return { key, ruleHref, ...head, peers, services }
  })
  if (
    c.issues.length > before ||
    version === undefined ||
    !workload ||
    !enforcementMode ||
    !visibilityLevel ||
    !mode ||
    rejectBlocked === undefined ||
    loopbackInPolicy === undefined ||
    !rules
  )
    return undefined
  return {
    version,
    workload,
    enforcementMode,
    visibilityLevel,
    mode,
    rejectBlocked,
    loopbackInPolicy,
    rules,
  }
}

function workloadOf(c: Checker, x: unknown, at: string): HostPolicy['workload'] | undefined {
  const o = c.object(x, at)
  if (!o) return undefined
  c.only(o, at, ['href', 'name'])
  const href = c.string(o, 'href', at, { required: true, max: HOST_POLICY_LIMITS.ref })
  const name = c.string(o, 'name', at, { required: true, min: 0, max: HOST_POLICY_LIMITS.name })
  return href !== undefined && name !== undefined ? { href, name } : undefined
}

/** A host policy from its server, checked: see hostPolicyOf. */
export function checkHostPolicy(x: unknown): Checked<HostPolicy> {
  const c = new Checker()
  return c.result(hostPolicyOf(c, x, '$'))
}
