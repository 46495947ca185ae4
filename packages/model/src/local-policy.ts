import type { CoexistenceMode } from './firewall-settings.js'
import type { HostPolicy, HostRule } from './host-policy.js'
import { RULE_ACTIONS } from './host-policy.js'
import { addressSetOf, IpParseError } from './ip.js'
import type { ServicePort } from './service.js'
import { checkServicePort, normaliseServicePorts } from './service.js'
import type { EnforcementMode, VisibilityLevel } from './workload.js'
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
 */
export interface LocalPolicyIssue {
  readonly path: string
  readonly message: string
}

export class LocalPolicyError extends Error {
  constructor(readonly issues: readonly LocalPolicyIssue[]) {
    super(`invalid host policy file:\n${issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`)
  }
}

const isObj = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x)

/** Validates a local policy file and turns it into a host policy; reports every problem at once. */
export function hostPolicyFromLocalFile(doc: unknown, name = 'local'): HostPolicy {
  const issues: LocalPolicyIssue[] = []
  const bad = (path: string, message: string) => issues.push({ path, message })
  if (!isObj(doc)) throw new LocalPolicyError([{ path: '$', message: 'must be a JSON object' }])
  const version = doc.version ?? 1
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1)
    bad('$.version', 'must be a whole number from 1')
  const enforcement = doc.enforcement_mode ?? 'full'
  if (!ENFORCEMENT_MODES.includes(enforcement as EnforcementMode))
    bad('$.enforcement_mode', `must be one of ${ENFORCEMENT_MODES.join(', ')}`)
  // Without a server there is nobody to report flows to: off unless asked for.
  const visibility = doc.visibility_level ?? 'flow_off'
  if (!VISIBILITY_LEVELS.includes(visibility as VisibilityLevel))
    bad('$.visibility_level', `must be one of ${VISIBILITY_LEVELS.join(', ')}`)
  const fc = doc.firewall_coexistence ?? null
  let mode: CoexistenceMode = 'exclusive'
  if (fc !== null) {
    if (!isObj(fc) || typeof fc.illumio_primary !== 'boolean')
      bad('$.firewall_coexistence', 'must be null (exclusive) or {"illumio_primary": true|false}')
    else mode = fc.illumio_primary ? 'coexistence_primary' : 'coexistence_non_primary'
  }
  for (const key of ['reject_blocked', 'loopback_in_policy'] as const) {
    if (doc[key] !== undefined && typeof doc[key] !== 'boolean')
      bad(`$.${key}`, 'must be true or false')
  }
  const rules: HostRule[] = []
  const list = doc.rules ?? []
  if (!Array.isArray(list)) bad('$.rules', 'must be a list')
  ;(Array.isArray(list) ? list : []).forEach((r: unknown, i) => {
    const at = `$.rules[${i}]`
    if (!isObj(r)) return bad(at, 'must be an object')
    if (!RULE_ACTIONS.includes(r.action as HostRule['action']))
      bad(`${at}.action`, `must be one of ${RULE_ACTIONS.join(', ')}`)
    if (r.direction !== 'inbound' && r.direction !== 'outbound')
      bad(`${at}.direction`, 'must be inbound or outbound')
    let peers: HostRule['peers'] = 'any'
    if (r.peers !== 'any') {
      if (!Array.isArray(r.peers) || !r.peers.every((p) => typeof p === 'string'))
        bad(`${at}.peers`, 'must be "any" or a list of addresses, CIDRs or ranges "A-B"')
      else {
        try {
          peers = addressSetOf(
            r.peers.map((p: string) => {
              const [from = '', to] = p.split('-')
              return to === undefined ? { from } : { from, to }
            }),
          )
        } catch (e) {
          if (e instanceof IpParseError) bad(`${at}.peers`, e.message)
          else throw e
        }
      }
    }
    const services: ServicePort[] = []
    if (!Array.isArray(r.services) || r.services.length === 0)
      bad(`${at}.services`, 'must be a non-empty list like [{"proto": 6, "port": 22}]')
    else {
      r.services.forEach((s: unknown, j) => {
        if (!isObj(s)) return bad(`${at}.services[${j}]`, 'must be an object')
        const sp: ServicePort = {
          proto: s.proto as number,
          ...(s.port !== undefined && { port: s.port as number }),
          ...(s.to_port !== undefined && { toPort: s.to_port as number }),
          ...(s.icmp_type !== undefined && { icmpType: s.icmp_type as number }),
          ...(s.icmp_code !== undefined && { icmpCode: s.icmp_code as number }),
        }
        for (const issue of checkServicePort(sp)) bad(`${at}.services[${j}]`, issue.message)
        services.push(sp)
      })
    }
    const key = `${name}/rules/${i}#${r.direction === 'outbound' ? 'out' : 'in'}`
    rules.push({
      key,
      ruleHref: `${name}/rules/${i}`,
      action: r.action as HostRule['action'],
      direction: r.direction as HostRule['direction'],
      peers,
      services: normaliseServicePorts(services),
    })
  })
  if (issues.length > 0) throw new LocalPolicyError(issues)
  const order = (a: HostRule['action']) => RULE_ACTIONS.indexOf(a)
  return {
    version: version as number,
    workload: { href: `/local/${name}`, name },
    enforcementMode: enforcement as EnforcementMode,
    visibilityLevel: visibility as VisibilityLevel,
    mode: {
      mode,
      applied: enforcement !== 'idle',
      reason: fc === null ? { kind: 'no_match' } : { kind: 'scope', items: [0] },
    },
    rejectBlocked: doc.reject_blocked === true,
    loopbackInPolicy: doc.loopback_in_policy === true,
    rules: rules.sort((a, b) => order(a.action) - order(b.action)),
  }
}
