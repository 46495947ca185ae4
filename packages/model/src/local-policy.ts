import type { Issue } from './check.js'
import { Checker, isObj } from './check.js'
import type { CoexistenceMode } from './firewall-settings.js'
import type { HostPolicy } from './host-policy.js'
import type { ServicePortKeys } from './host-policy-check.js'
import {
  HOST_POLICY_LIMITS,
  PeerBudget,
  ruleHeadOf,
  rulesOf,
  servicePortsOf,
} from './host-policy-check.js'
import type { AddressSet } from './ip.js'
import { addressSetOf, IpParseError } from './ip.js'
import { ENFORCEMENT_MODES, VISIBILITY_LEVELS } from './workload.js'

/**
 * The host policy file for running an agent without a server:
 *
 *   { "version": 3, "enforcement_mode": "full", "visibility_level": "flow_off",
 *     "firewall_coexistence": { "illumio_primary": true },   // or null for exclusive
 *     "reject_blocked": false, "loopback_in_policy": false,
 *     "rules": [ { "action": "allow", "direction": "inbound",
 *                  "peers": ["198.18.0.0/24"],                // or "any"
 *                  "services": [ { "proto": 6, "port": 22 } ] } ] }
 *
 * It is checked by the same schema as a policy from a server (host-policy-check.ts).
 */
export type LocalPolicyIssue = Issue

export class LocalPolicyError extends Error {
  constructor(readonly issues: readonly LocalPolicyIssue[]) {
    super(`invalid host policy file:\n${issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`)
  }
}

const FILE_SERVICE_KEYS: ServicePortKeys = {
  toPort: 'to_port',
  icmpType: 'icmp_type',
  icmpCode: 'icmp_code',
}
const FILE_KEYS = [
  'version',
  'enforcement_mode',
  'visibility_level',
  'firewall_coexistence',
  'reject_blocked',
  'loopback_in_policy',
  'rules',
]
const PEERS_FORM = 'must be "any" or a list of addresses, CIDRs or ranges "A-B"'

/** `"any"`, or addresses, CIDRs and ranges `A-B`, re-parsed into a normalised address set. */
function filePeersOf(
  c: Checker,
  x: unknown,
  at: string,
  budget: PeerBudget,
): AddressSet | 'any' | undefined {
  if (x === 'any') return 'any'
  if (
    !Array.isArray(x) ||
    !x.every((p): p is string => typeof p === 'string' && p.length <= HOST_POLICY_LIMITS.peer)
  )
    return c.fail(at, PEERS_FORM)
  if (!budget.take(c, x.length, at)) return undefined
  try {
    return addressSetOf(
      x.map((p) => {
        const [from = '', to] = p.split('-')
        return to === undefined ? { from } : { from, to }
      }),
    )
  } catch (e) {
    if (e instanceof IpParseError) return c.fail(at, e.message)
    throw e
  }
}

/** Validates a local policy file and turns it into a host policy; reports every problem at once. */
export function hostPolicyFromLocalFile(doc: unknown, name = 'local'): HostPolicy {
  const c = new Checker()
  if (!isObj(doc)) throw new LocalPolicyError([{ path: '$', message: 'must be a JSON object' }])
  c.only(doc, '$', FILE_KEYS)
  const version =
    c.int(doc, 'version', '$', { min: 1, max: HOST_POLICY_LIMITS.version, nullable: true }) ?? 1
  const enforcement =
    c.oneOf(doc, 'enforcement_mode', '$', ENFORCEMENT_MODES, { nullable: true }) ?? 'full'
  // Without a server there is nobody to report flows to: off unless asked for.
  const visibility =
    c.oneOf(doc, 'visibility_level', '$', VISIBILITY_LEVELS, { nullable: true }) ?? 'flow_off'
  const fc = doc.firewall_coexistence ?? null
  let mode: CoexistenceMode = 'exclusive'
  if (fc !== null) {
    if (!isObj(fc) || typeof fc.illumio_primary !== 'boolean' || Object.keys(fc).length !== 1)
      c.fail(
        '$.firewall_coexistence',
        'must be null (exclusive) or {"illumio_primary": true|false}',
      )
    else mode = fc.illumio_primary ? 'coexistence_primary' : 'coexistence_non_primary'
  }
  const rejectBlocked = c.bool(doc, 'reject_blocked', '$') ?? false
  const loopbackInPolicy = c.bool(doc, 'loopback_in_policy', '$') ?? false
  const budget = new PeerBudget()
  const rules = rulesOf(c, doc.rules ?? [], '$.rules', (r, at, i) => {
    c.only(r, at, ['action', 'direction', 'peers', 'services'])
    const head = ruleHeadOf(c, r, at)
    const peers = filePeersOf(c, r.peers, `${at}.peers`, budget)
    const services = servicePortsOf(c, r.services, `${at}.services`, FILE_SERVICE_KEYS)
    if (!head || !peers || !services) return
    const ruleHref = `${name}/rules/${i}`
    const key = `${ruleHref}#${head.direction === 'outbound' ? 'out' : 'in'}`
    return { key, ruleHref, ...head, peers, services }
  })
  if (c.issues.length > 0 || !rules) throw new LocalPolicyError(c.issues)
  return {
    version,
    workload: { href: `/local/${name}`, name },
    enforcementMode: enforcement,
    visibilityLevel: visibility,
    mode: {
      mode,
      applied: enforcement !== 'idle',
      reason: fc === null ? { kind: 'no_match' } : { kind: 'scope', items: [0] },
    },
    rejectBlocked,
    loopbackInPolicy,
    rules,
  }
}
