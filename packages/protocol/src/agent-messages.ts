/**
 * The server's checks of what agents send. They refuse what the server has always refused, so
 * an agent that worked before works now; each returns the typed message or every problem.
 */
import type { Checked, Doc, FlowSummaryUpload, WorkloadInterface } from '@palisade/model'
import { canonicalAddress, Checker, HOST_POLICY_LIMITS, setIdOf } from '@palisade/model'
import {
  AGENT_ARCHES,
  AGENT_EVENT_TYPES,
  BACKENDS,
  EVENT_SEVERITIES,
  FLOW_POLICY_DECISIONS,
  OS_PLATFORMS,
} from './enums.js'
import type {
  ActivateRequestChecked,
  AgentBuild,
  AgentEvent,
  AppliedReport,
  SetsRequest,
  SetWant,
  StatusReportChecked,
} from './messages.js'
import { BATCH_LIMIT, STATUS_REPORT_KEYS } from './messages.js'

/** An address re-parsed and re-formatted (one spelling for each address); a failure if not one. */
function addressOf(c: Checker, text: string, path: string): string | undefined {
  try {
    return canonicalAddress(text).text
  } catch {
    return c.fail(path, `${JSON.stringify(text)} is not an IPv4 or IPv6 address`)
  }
}

/** The `interfaces` of a body: a name and an IPv4 or IPv6 address each. */
export function interfacesOf(c: Checker, body: Doc): WorkloadInterface[] | undefined {
  const list = c.array(body, 'interfaces', '$', { max: 256 })
  if (!list) return undefined
  const out: WorkloadInterface[] = []
  list.forEach((x, i) => {
    const o = c.object(x, `$.interfaces[${i}]`)
    if (!o) return
    const name = c.string(o, 'name', `$.interfaces[${i}]`, { required: true, max: 64 })
    const written = c.string(o, 'address', `$.interfaces[${i}]`, { required: true, max: 64 })
    const address =
      written === undefined ? undefined : addressOf(c, written, `$.interfaces[${i}].address`)
    if (name !== undefined && address !== undefined) out.push({ name, address })
  })
  return out
}

export function checkActivateRequest(body: unknown): Checked<ActivateRequestChecked> {
  const c = new Checker()
  const o = c.object(body, '$')
  if (!o) return c.refused()
  c.only(o, '$', [
    'activation_code',
    'hostname',
    'os_platform',
    'os_detail',
    'interfaces',
    'agent_type',
  ])
  const code = c.string(o, 'activation_code', '$', { required: true, max: 128 })
  const hostname = c.string(o, 'hostname', '$', { required: true, max: 255 })
  const platform = c.oneOf(o, 'os_platform', '$', OS_PLATFORMS) ?? 'linux'
  c.string(o, 'os_detail', '$', { max: 255 })
  const interfaces = interfacesOf(c, o) ?? []
  return c.result(
    code !== undefined && hostname !== undefined
      ? { activation_code: code, hostname, os_platform: platform, interfaces }
      : undefined,
  )
}

export function checkStatusReport(body: unknown): Checked<StatusReportChecked> {
  const c = new Checker()
  const o = c.object(body, '$')
  if (!o) return c.refused()
  c.only(o, '$', STATUS_REPORT_KEYS)
  let applied: AppliedReport | undefined
  const a =
    o.applied === undefined || o.applied === null ? undefined : c.object(o.applied, '$.applied')
  if (a) {
    const version = c.int(a, 'version', '$.applied', { required: true, min: 0 })
    const hash = c.string(a, 'hash', '$.applied', { required: true, max: 64 })
    const mode = c.string(a, 'mode', '$.applied', { max: 64 })
    if (version !== undefined && hash !== undefined)
      applied = { version, hash, ...(mode !== undefined && { mode }) }
  }
  const health = o.health === undefined ? undefined : c.object(o.health, '$.health')
  // The server reads conditions from every agent's health in one sweep (liveness.ts).
  const conditions = health ? c.array(health, 'conditions', '$.health', { max: 64 }) : undefined
  conditions?.forEach((x, i) => {
    const p = `$.health.conditions[${i}]`
    const cond = c.object(x, p)
    if (cond) c.string(cond, 'type', p, { required: true, max: 128 })
  })
  const survey = o.survey === undefined ? undefined : c.object(o.survey, '$.survey')
  const ruleset = o.ruleset === undefined ? undefined : c.object(o.ruleset, '$.ruleset')
  if (ruleset && (!Array.isArray(ruleset.tables) || !Array.isArray(ruleset.ipsets)))
    c.fail('$.ruleset', 'must be {"tables": [...], "ipsets": [...]}')
  const backend = c.oneOf(o, 'backend', '$', BACKENDS)
  const interfaces = interfacesOf(c, o)
  const build = buildOf(c, o.build)
  return c.result({
    ...(applied && { applied }),
    ...(health && { health }),
    ...(survey && { survey }),
    ...(ruleset && { ruleset }),
    ...(backend && { backend }),
    ...(interfaces && { interfaces }),
    ...(build && { build }),
  })
}

const VERSION = /^[0-9A-Za-z.+-]{1,64}$/
const SHA256 = /^[0-9a-f]{64}$/

function buildOf(c: Checker, x: unknown): AgentBuild | undefined {
  if (x === undefined) return undefined
  const b = c.object(x, '$.build')
  if (!b) return undefined
  c.only(b, '$.build', ['version', 'arch', 'sha256'])
  const version = c.string(b, 'version', '$.build', { required: true, max: 64 })
  if (version !== undefined && !VERSION.test(version))
    c.fail('$.build.version', 'must be letters, digits and . + -')
  const arch = c.oneOf(b, 'arch', '$.build', AGENT_ARCHES, { required: true })
  const sha256 = b.sha256 === null ? null : c.string(b, 'sha256', '$.build', { required: true })
  if (typeof sha256 === 'string' && !SHA256.test(sha256))
    c.fail('$.build.sha256', 'must be 64 hexadecimal digits, or null')
  return version !== undefined && arch !== undefined && sha256 !== undefined
    ? { version, arch, sha256 }
    : undefined
}

const isTime = (t: string) => !Number.isNaN(Date.parse(t))

function batchOf<T>(
  body: unknown,
  what: string,
  itemOf: (c: Checker, x: unknown, path: string) => T | undefined,
): Checked<T[]> {
  const c = new Checker()
  if (!Array.isArray(body) || body.length > BATCH_LIMIT) {
    c.fail('$', `the body must be a list of at most ${BATCH_LIMIT.toLocaleString('en')} ${what}`)
    return c.refused()
  }
  const out: T[] = []
  body.forEach((x: unknown, i) => {
    const item = itemOf(c, x, `$[${i}]`)
    if (item !== undefined) out.push(item)
  })
  return c.result(out)
}

function eventOf(c: Checker, x: unknown, path: string): AgentEvent | undefined {
  const o = c.object(x, path)
  if (!o) return undefined
  const uuid = c.string(o, 'uuid', path, { required: true, max: 64 })
  const type = c.oneOf(o, 'event_type', path, AGENT_EVENT_TYPES, { required: true })
  const severity = c.oneOf(o, 'severity', path, EVENT_SEVERITIES, { required: true })
  const timestamp = c.string(o, 'timestamp', path, { required: true, max: 64 })
  if (timestamp !== undefined && !isTime(timestamp))
    c.fail(`${path}.timestamp`, 'must be an RFC 3339 time')
  const details = c.object(o.details ?? {}, `${path}.details`)
  if (!uuid || !type || !severity || !timestamp || !details) return undefined
  return { uuid, event_type: type, severity, timestamp, details }
}

/** `POST events`: at most 1,000 events. */
export const checkEventsBatch = (body: unknown) => batchOf(body, 'events', eventOf)

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
] as const satisfies readonly (keyof FlowSummaryUpload)[]

function flowSummaryOf(c: Checker, x: unknown, path: string): FlowSummaryUpload | undefined {
  const o = c.object(x, path)
  if (!o) return undefined
  const before = c.issues.length
  c.only(o, path, FLOW_KEYS)
  const uuid = c.string(o, 'uuid', path, { required: true, max: 64 })
  const direction = c.oneOf(o, 'direction', path, ['inbound', 'outbound'], { required: true })
  const [src, dst] = (['src_ip', 'dst_ip'] as const).map((k) => {
    const ip = c.string(o, k, path, { required: true, max: 64 })
    return ip === undefined ? undefined : addressOf(c, ip, `${path}.${k}`)
  })
  const [srcPort, port] = (['src_port', 'port'] as const).map((k) =>
    c.int(o, k, path, { min: 0, max: 65535 }),
  )
  const proto = c.int(o, 'proto', path, { required: true, min: 0, max: 255 })
  const [icmpType, icmpCode] = (['icmp_type', 'icmp_code'] as const).map((k) =>
    c.int(o, k, path, { min: 0, max: 255 }),
  )
  const decision = c.oneOf(o, 'policy_decision', path, FLOW_POLICY_DECISIONS, { required: true })
  const ruleHref = c.string(o, 'rule_href', path, { max: 512, nullable: true })
  const connections = c.int(o, 'num_connections', path, { required: true, min: 1 })
  const [first, last] = (['first_seen', 'last_seen'] as const).map((k) => {
    const t = c.string(o, k, path, { required: true, max: 64 })
    if (t !== undefined && !isTime(t)) return c.fail(`${path}.${k}`, 'must be an RFC 3339 time')
    return t
  })
  if (first && last && Date.parse(first) > Date.parse(last))
    c.fail(`${path}.last_seen`, 'must not be before first_seen')
  const dropped = c.bool(o, 'dropped_downstream', path, { required: true })
  if (
    c.issues.length > before ||
    !uuid ||
    !direction ||
    !src ||
    !dst ||
    proto === undefined ||
    !decision ||
    connections === undefined ||
    !first ||
    !last ||
    dropped === undefined
  )
    return undefined
  return {
    uuid,
    direction,
    src_ip: src,
    dst_ip: dst,
    ...(srcPort !== undefined && { src_port: srcPort }),
    ...(port !== undefined && { port }),
    proto,
    ...(icmpType !== undefined && { icmp_type: icmpType }),
    ...(icmpCode !== undefined && { icmp_code: icmpCode }),
    policy_decision: decision,
    rule_href: ruleHref ?? null,
    num_connections: connections,
    first_seen: first,
    last_seen: last,
    dropped_downstream: dropped,
  }
}

/** `POST flows`: at most 1,000 flow summaries. */
export const checkFlowsBatch = (body: unknown) => batchOf(body, 'flow summaries', flowSummaryOf)

/** `POST address_sets`: at most as many sets as a policy has rules, each a set id. */
export function checkSetsRequest(body: unknown): Checked<SetsRequest> {
  const c = new Checker()
  const o = c.object(body, '$')
  if (!o) return c.refused()
  c.only(o, '$', ['want'])
  const list = c.array(o, 'want', '$', { required: true, max: HOST_POLICY_LIMITS.rules })
  const want: SetWant[] = []
  list?.forEach((x, i) => {
    const at = `$.want[${i}]`
    const w = c.object(x, at)
    if (!w) return
    c.only(w, at, ['id', 'from'])
    const id = setIdOf(c, w.id, `${at}.id`)
    const from = w.from === undefined ? undefined : setIdOf(c, w.from, `${at}.from`)
    if (id !== undefined) want.push(from === undefined ? { id } : { id, from })
  })
  return c.result(list && { want })
}
