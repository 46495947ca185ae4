/**
 * What agents send on the agent channel, checked: the activation request, status reports,
 * event batches and flow summaries. Every check the channel makes of a message is here, so the
 * channel's message contract lives in one place.
 */
import type { FlowSummaryUpload } from '@palisade/model'
import { addrToBigInt, OS_PLATFORMS } from '@palisade/model'
import type { FastifyRequest } from 'fastify'
import { invalidOne } from '../errors.js'
import { bodyObject } from '../http.js'
import { Checker, interfacesOf } from '../validate.js'

/** The agent channel: ours, not Illumio's private protocol. Every route names the agent. */
export const AGENT_PREFIX = '/agent/v1'
const AGENT_EVENT_TYPES = new Set([
  'agent.tampering',
  'agent.firewall_apply_failed',
  'agent.health',
  'agent.suspend',
  'agent.unsuspend',
  'agent.goodbye',
])

/** An activation request, checked; throws the 406 a malformed one gets. */
export function activationOf(req: FastifyRequest) {
  const body = bodyObject(req)
  const c = new Checker()
  c.only(body, '$', [
    'activation_code',
    'hostname',
    'os_platform',
    'os_detail',
    'interfaces',
    'agent_type',
  ])
  const code = c.string(body, 'activation_code', '$', { required: true, max: 128 })
  const hostname = c.string(body, 'hostname', '$', { required: true, max: 255 })
  const platform = c.oneOf(body, 'os_platform', '$', OS_PLATFORMS) ?? 'linux'
  c.string(body, 'os_detail', '$', { max: 255 })
  const interfaces = interfacesOf(c, body) ?? []
  c.done()
  return { code, hostname, platform, interfaces }
}

/** A status report, checked; throws the 406 a malformed one gets. */
export function statusReportOf(req: FastifyRequest) {
  const body = bodyObject(req)
  const c = new Checker()
  c.only(body, '$', ['applied', 'health', 'survey', 'interfaces', 'ruleset', 'backend'])
  const applied =
    body.applied === undefined || body.applied === null
      ? undefined
      : c.object(body.applied, '$.applied')
  if (applied) {
    c.int(applied, 'version', '$.applied', { required: true, min: 0 })
    c.string(applied, 'hash', '$.applied', { required: true, max: 64 })
    c.string(applied, 'mode', '$.applied', { max: 64 })
  }
  const health = body.health === undefined ? undefined : c.object(body.health, '$.health')
  const survey = body.survey === undefined ? undefined : c.object(body.survey, '$.survey')
  // The host's whole live ruleset as the agent parsed it: the server reads it, never runs it.
  const ruleset = body.ruleset === undefined ? undefined : c.object(body.ruleset, '$.ruleset')
  if (ruleset && (!Array.isArray(ruleset.tables) || !Array.isArray(ruleset.ipsets)))
    c.fail('$.ruleset', 'must be {"tables": [...], "ipsets": [...]}')
  const backend = c.oneOf(body, 'backend', '$', ['nftables', 'iptables-nft', 'iptables-legacy'])
  const interfaces = interfacesOf(c, body)
  c.done()
  return { applied, health, survey, ruleset, backend, interfaces }
}

/** An event an agent reports. */
export interface AgentEvent {
  readonly uuid: string
  readonly event_type: string
  readonly severity: string
  readonly timestamp: string
  readonly details?: unknown
}

/** A batch of agent events, checked; throws the 406 a malformed one gets. */
export function agentEventsOf(list: unknown): AgentEvent[] {
  if (!Array.isArray(list) || list.length > 1000)
    throw invalidOne('input_validation_error', 'the body must be a list of at most 1,000 events')
  const c = new Checker()
  list.forEach((e, i) => {
    const o = c.object(e, `$[${i}]`)
    if (!o) return
    c.string(o, 'uuid', `$[${i}]`, { required: true, max: 64 })
    c.oneOf(o, 'event_type', `$[${i}]`, [...AGENT_EVENT_TYPES], { required: true })
    c.oneOf(
      o,
      'severity',
      `$[${i}]`,
      ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'],
      { required: true },
    )
    const ts = c.string(o, 'timestamp', `$[${i}]`, { required: true, max: 64 })
    if (ts !== undefined && Number.isNaN(Date.parse(ts)))
      c.fail(`$[${i}].timestamp`, 'must be an RFC 3339 time')
    c.object(o.details ?? {}, `$[${i}].details`)
  })
  c.done()
  return list as AgentEvent[]
}

/** A batch of flow summaries, checked; throws the 406 a malformed one gets. */
export function flowUploadsOf(list: unknown): FlowSummaryUpload[] {
  if (!Array.isArray(list) || list.length > 1000)
    throw invalidOne(
      'input_validation_error',
      'the body must be a list of at most 1,000 flow summaries',
    )
  const c = new Checker()
  list.forEach((f, i) => checkFlowUpload(c, f, `$[${i}]`))
  c.done()
  return list as FlowSummaryUpload[]
}

const FLOW_KEYS = [
  'uuid',
  'direction',
  'src_ip',
  'dst_ip',
  'src_port',
  'port',
  'proto',
  'icmp_type',
  'icmp_code',
  'policy_decision',
  'rule_href',
  'num_connections',
  'first_seen',
  'last_seen',
  'dropped_downstream',
]

function checkFlowUpload(c: Checker, x: unknown, path: string): void {
  const o = c.object(x, path)
  if (!o) return
  c.only(o, path, FLOW_KEYS)
  c.string(o, 'uuid', path, { required: true, max: 64 })
  c.oneOf(o, 'direction', path, ['inbound', 'outbound'], { required: true })
  for (const k of ['src_ip', 'dst_ip']) {
    const ip = c.string(o, k, path, { required: true, max: 64 })
    if (ip !== undefined && !isIpAddress(ip)) c.fail(`${path}.${k}`, 'must be an IP address')
  }
  for (const k of ['src_port', 'port']) c.int(o, k, path, { min: 0, max: 65535 })
  c.int(o, 'proto', path, { required: true, min: 0, max: 255 })
  for (const k of ['icmp_type', 'icmp_code']) c.int(o, k, path, { min: 0, max: 255 })
  c.oneOf(o, 'policy_decision', path, ['allowed', 'potentially_blocked', 'blocked'], {
    required: true,
  })
  c.string(o, 'rule_href', path, { max: 512, nullable: true })
  c.int(o, 'num_connections', path, { required: true, min: 1 })
  const times = ['first_seen', 'last_seen'].map((k) => {
    const t = c.string(o, k, path, { required: true, max: 64 })
    if (t !== undefined && Number.isNaN(Date.parse(t)))
      c.fail(`${path}.${k}`, 'must be an RFC 3339 time')
    return t
  })
  if (times[0] && times[1] && Date.parse(times[0]) > Date.parse(times[1]))
    c.fail(`${path}.last_seen`, 'must not be before first_seen')
  c.bool(o, 'dropped_downstream', path, { required: true })
}

function isIpAddress(text: string): boolean {
  try {
    addrToBigInt(text)
    return !text.includes('/')
  } catch {
    return false
  }
}
