import type { EnforcementMode } from '@palisade/model'
import { ENFORCEMENT_MODES, OS_PLATFORMS, VISIBILITY_LEVELS } from '@palisade/model'
import type { WorkloadDetail, WorkloadRow } from '../stores/workloads.js'
import { WORKLOAD_DETAILS } from '../stores/workloads.js'
import type { Doc } from '../validate.js'
import { Checker, isObj } from '../validate.js'
import { addressAt, apiInterfacesOf } from './workload-interfaces.js'

/**
 * The visibility levels the API takes: the model's, from the most detail to the least as the
 * vendor lists them, and the vendor's newer name for full detail.
 */
export const API_VISIBILITY_LEVELS = [
  ...[...VISIBILITY_LEVELS].reverse(),
  'enhanced_data_collection',
] as const

/** The deprecated `agent.config.mode` and the enforcement mode each means. */
export const LEGACY_MODES: Readonly<Record<string, EnforcementMode>> = {
  idle: 'idle',
  illuminated: 'visibility_only',
  selective: 'selective',
  enforced: 'full',
}
/** The legacy mode an enforcement mode shows as in `agent.config.mode`. */
export const legacyModeOf = (m: string) =>
  Object.entries(LEGACY_MODES).find(([, v]) => v === m)?.[0] ?? 'idle'

/**
 * The fields an agent reports (or that follow from it) of a managed workload: a body may carry
 * them back as read, but not change them.
 */
const AGENT_REPORTED = [
  'hostname',
  'interfaces',
  'online',
  'os_id',
  'os_detail',
  'public_ip',
  'distinguished_name',
] as const

const FIELDS = [
  'name',
  'hostname',
  'description',
  'labels',
  'interfaces',
  'enforcement_mode',
  'visibility_level',
  'os_type',
  'external_data_set',
  'external_data_reference',
  'href',
  ...WORKLOAD_DETAILS,
  'online',
  'ignored_interface_names',
  'agent',
  'agent_to_pce_certificate_authentication_id',
]

/** The workload a body edits, and what its agent reports of it (`online`). */
export interface EditedWorkload {
  readonly row: WorkloadRow
  readonly online: boolean
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b)

/** The deprecated `agent` object: its config's mode and traffic logging, or a 406 for the rest. */
function agentFields(c: Checker, body: Doc) {
  if (body.agent === undefined || body.agent === null) return {}
  const agent = c.object(body.agent, '$.agent')
  if (!agent) return {}
  // Read-only values a client sends back as it read them: the vendor ignores them too.
  c.only(agent, '$.agent', [
    'href',
    'config',
    'status',
    'secure_connect',
    'active_pce_fqdn',
    'target_pce_fqdn',
    'type',
  ])
  const status = agent.status === undefined || agent.status === null ? undefined : agent.status
  if (isObj(status) && status.status === 'suspended')
    c.fail(
      '$.agent.status.status',
      'suspending an agent through the API is not supported yet; run "palisade agent suspend" on the host',
      'unsupported_field_value',
    )
  if (agent.config === undefined || agent.config === null) return {}
  const config = c.object(agent.config, '$.agent.config')
  if (!config) return {}
  c.only(config, '$.agent.config', [
    'mode',
    'log_traffic',
    'visibility_level',
    'security_policy_update_mode',
  ])
  const mode = c.oneOf(config, 'mode', '$.agent.config', Object.keys(LEGACY_MODES))
  const log = c.bool(config, 'log_traffic', '$.agent.config')
  const visibility = c.oneOf(config, 'visibility_level', '$.agent.config', API_VISIBILITY_LEVELS)
  if (
    c.oneOf(config, 'security_policy_update_mode', '$.agent.config', ['adaptive', 'static']) ===
    'static'
  )
    c.fail(
      '$.agent.config.security_policy_update_mode',
      'static policy updates are not supported: agents apply each provision at once',
      'unsupported_field_value',
    )
  return {
    ...(mode !== undefined && { enforcement_mode: LEGACY_MODES[mode] }),
    ...(visibility !== undefined
      ? { visibility_level: visibility }
      : log === false && { visibility_level: 'flow_off' as const }),
  }
}

/**
 * Checks workload fields (all optional on update); resolves with the fields to write. The org's
 * labels are read only when the body names some. `edited` is the workload an update changes.
 */
export async function checkWorkload(
  body: Doc,
  edited: EditedWorkload | undefined,
  labelsOfOrg: () => Promise<ReadonlyMap<string, { key: string }>>,
) {
  const create = edited === undefined
  const managed = edited?.row.managed === 1
  const c = new Checker()
  c.only(body, '$', FIELDS)
  const name = c.string(body, 'name', '$', { max: 255 })
  const hostname = c.string(body, 'hostname', '$', { max: 255 })
  if (create && name === undefined && hostname === undefined)
    c.fail('$', 'a workload needs a name or a hostname')
  const fromAgent = agentFields(c, body)
  const enforcement = c.oneOf(body, 'enforcement_mode', '$', ENFORCEMENT_MODES)
  if (
    enforcement !== undefined &&
    fromAgent.enforcement_mode !== undefined &&
    enforcement !== fromAgent.enforcement_mode
  )
    c.fail(
      '$.agent.config.mode',
      `says ${legacyModeOf(fromAgent.enforcement_mode)}, enforcement_mode says ${enforcement}; send one of them`,
    )
  const visibility = c.oneOf(body, 'visibility_level', '$', API_VISIBILITY_LEVELS)
  const os = c.oneOf(body, 'os_type', '$', OS_PLATFORMS)
  const description = c.string(body, 'description', '$', { max: 1024, nullable: true })
  c.string(body, 'external_data_set', '$', { max: 255, nullable: true })
  c.string(body, 'external_data_reference', '$', { max: 255, nullable: true })
  const details: Partial<Record<WorkloadDetail, string | null>> = {}
  for (const key of WORKLOAD_DETAILS) {
    const v = c.string(body, key, '$', { max: 255, nullable: true })
    if (v !== undefined || body[key] === null) details[key] = v === undefined || v === '' ? null : v
  }
  if (details.public_ip) details.public_ip = addressAt(c, details.public_ip, '$.public_ip')?.text
  const online = c.bool(body, 'online', '$')
  const cert = c.string(body, 'agent_to_pce_certificate_authentication_id', '$', {
    nullable: true,
  })
  if (cert)
    c.fail(
      '$.agent_to_pce_certificate_authentication_id',
      'agents authenticate with the credential their activation gave them, not a certificate; leave it out',
      'unsupported_field_value',
    )
  const ignored =
    body.ignored_interface_names === null
      ? []
      : c.array(body, 'ignored_interface_names', '$', { max: 256 })
  ignored?.forEach((n, i) => {
    if (typeof n !== 'string' || n.length === 0 || n.length > 64)
      c.fail(`$.ignored_interface_names[${i}]`, 'must be an interface name (1 to 64 characters)')
  })
  let labels: string[] | undefined
  const list = c.array(body, 'labels', '$', { max: 64 })
  if (list) {
    const known = await labelsOfOrg()
    const keys = new Map<string, string>()
    labels = []
    list.forEach((x, i) => {
      const href = c.hrefRef(x, `$.labels[${i}]`)
      if (href === undefined) return
      const l = known.get(href)
      if (!l) return void c.fail(`$.labels[${i}]`, `label ${href} does not exist`, 'invalid_label')
      if (keys.has(l.key))
        c.fail(
          `$.labels[${i}]`,
          `a workload has one label per key; ${keys.get(l.key)} and ${href} are both "${l.key}"`,
          'invalid_label',
        )
      keys.set(l.key, href)
      labels?.push(href)
    })
  }
  const interfaces = apiInterfacesOf(c, body)
  if (edited && managed) {
    // What the agent reports may come back as it was read (clients send a workload whole).
    const current: Record<(typeof AGENT_REPORTED)[number], unknown> = {
      hostname: edited.row.hostname,
      interfaces: edited.row.interfaces,
      online: edited.online,
      os_id: edited.row.os_id,
      os_detail: edited.row.os_detail,
      public_ip: edited.row.public_ip,
      distinguished_name: edited.row.distinguished_name,
    }
    const given: Record<(typeof AGENT_REPORTED)[number], unknown> = {
      hostname,
      interfaces,
      online,
      os_id: details.os_id,
      os_detail: details.os_detail,
      public_ip: details.public_ip,
      distinguished_name: details.distinguished_name,
    }
    for (const key of AGENT_REPORTED) {
      const v = given[key]
      if (v === undefined) continue
      const same =
        key === 'interfaces'
          ? sameJson(
              (v as { name: string; address: string }[]).map((i) => [i.name, i.address]),
              edited.row.interfaces.map((i) => [i.name, i.address]),
            )
          : sameJson(v, current[key])
      if (!same)
        c.fail(
          `$.${key}`,
          `of a managed workload comes from its agent and cannot be changed; leave it out or send it as read (${JSON.stringify(current[key])})`,
          'read_only_field',
        )
    }
  }
  c.done()
  // A managed workload keeps what its agent reported (checked equal above).
  const own = (key: (typeof AGENT_REPORTED)[number]) => !managed || !AGENT_REPORTED.includes(key)
  return {
    ...(name !== undefined && { name }),
    ...(hostname !== undefined && own('hostname') && { hostname }),
    ...fromAgent,
    ...(enforcement && { enforcement_mode: enforcement }),
    ...(visibility && { visibility_level: visibility }),
    ...(os && { os_platform: os }),
    ...(labels && { labels }),
    ...(description !== undefined && { description }),
    ...(body.description === null && { description: null }),
    ...(interfaces && own('interfaces') && { interfaces }),
    ...Object.fromEntries(
      Object.entries(details).filter(([k]) => own(k as (typeof AGENT_REPORTED)[number])),
    ),
    ...(online !== undefined && own('online') && { online: online ? 1 : 0 }),
    ...(ignored && { ignored_interface_names: ignored as string[] }),
    ...(body.external_data_set !== undefined && {
      external_data_set: body.external_data_set as string,
    }),
    ...(body.external_data_reference !== undefined && {
      external_data_reference: body.external_data_reference as string,
    }),
  }
}
