/**
 * The agent's checks of what its server sends. Strict: a reply is taken only whole and only as
 * specified, every field bounded, the host policy through the one host-policy schema. A reply
 * that fails is an error: the agent keeps what it enforces and says why.
 */
import type { Checked, PolicyDoc } from '@palisade/model'
import {
  Checker,
  HOST_POLICY_LIMITS,
  isObj,
  PeerBudget,
  policyDocOf,
  setIdOf,
  wireAddressSetOf,
} from '@palisade/model'
import { RESTORE_MODES } from './enums.js'
import type {
  ActivateReply,
  ErrorReply,
  PolicyReply,
  SetEntry,
  SetsReply,
  StatusReply,
  UnpairReply,
} from './messages.js'

/** An agent id goes into every route: letters, digits, `-` and `_` only. */
const AGENT_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/
/** A token goes into a header: printable ASCII without spaces. */
const TOKEN = /^[\x21-\x7e]{1,512}$/
const HASH = /^[0-9a-f]{1,64}$/
const HOST = /^[A-Za-z0-9._:-]{1,255}$/
const RELEASE = /^[0-9A-Za-z.+-]{1,64}$/
const SHA256 = /^[0-9a-f]{64}$/

function matching(c: Checker, o: Record<string, unknown>, key: string, re: RegExp, what: string) {
  const v = o[key]
  if (v === undefined) return c.fail(`$.${key}`, 'is required')
  return typeof v === 'string' && re.test(v) ? v : c.fail(`$.${key}`, `must be ${what}`)
}

/** The reply to `activate` (201). */
export function checkActivateReply(body: unknown): Checked<ActivateReply> {
  const c = new Checker()
  const o = c.object(body, '$')
  if (!o) return c.refused()
  c.only(o, '$', ['agent_id', 'workload_href', 'token', 'agent_endpoint'])
  const id = matching(c, o, 'agent_id', AGENT_ID, 'letters, digits, "-" and "_" (at most 64)')
  const href = c.string(o, 'workload_href', '$', { required: true, max: 1024 })
  const token = matching(c, o, 'token', TOKEN, 'printable ASCII without spaces (at most 512)')
  const e = c.object(o.agent_endpoint, '$.agent_endpoint')
  let endpoint: ActivateReply['agent_endpoint'] | undefined
  if (e) {
    c.only(e, '$.agent_endpoint', ['address', 'port'])
    const address = c.string(e, 'address', '$.agent_endpoint', { required: true })
    if (address !== undefined && !HOST.test(address))
      c.fail('$.agent_endpoint.address', 'must be an address or a host name')
    const port = c.int(e, 'port', '$.agent_endpoint', { required: true, min: 0, max: 65535 })
    if (address !== undefined && port !== undefined) endpoint = { address, port }
  }
  return c.result(
    id && href && token && endpoint
      ? { agent_id: id, workload_href: href, token, agent_endpoint: endpoint }
      : undefined,
  )
}

/**
 * A policy reply (200): the hash and the host policy, checked by the host-policy schema (shared
 * sets by id allowed: the agent resolves them, see `checkSetsReply`).
 */
export function checkPolicyReply(body: unknown): Checked<PolicyReply> {
  const c = new Checker()
  const o = c.object(body, '$')
  if (!o) return c.refused()
  c.only(o, '$', ['hash', 'policy'])
  const hash = matching(c, o, 'hash', HASH, 'a hash (at most 64 hexadecimal digits)')
  const policy: PolicyDoc | undefined = policyDocOf(c, o.policy, '$.policy')
  return c.result(hash && policy ? { hash, policy } : undefined)
}

/**
 * A sets reply (200): each set re-parsed by the host-policy schema's address checks, each delta's
 * two halves too. Whether a set is the one its id names is for the agent to check once it is
 * built (`HeldSets`).
 */
export function checkSetsReply(body: unknown): Checked<SetsReply> {
  const c = new Checker()
  const o = c.object(body, '$')
  if (!o) return c.refused()
  c.only(o, '$', ['sets', 'gone'])
  const list = c.array(o, 'sets', '$', { required: true, max: HOST_POLICY_LIMITS.rules })
  const goneList = c.array(o, 'gone', '$', { required: true, max: HOST_POLICY_LIMITS.rules })
  const budget = new PeerBudget()
  const sets: SetEntry[] = []
  list?.forEach((x, i) => {
    const at = `$.sets[${i}]`
    const e = c.object(x, at)
    if (!e) return
    const id = setIdOf(c, e.id, `${at}.id`)
    if ('set' in e) {
      c.only(e, at, ['id', 'set'])
      const set = wireAddressSetOf(c, e.set, `${at}.set`, budget)
      if (id && set) sets.push({ id, set })
      return
    }
    c.only(e, at, ['id', 'from', 'add', 'remove'])
    const from = setIdOf(c, e.from, `${at}.from`)
    const add = wireAddressSetOf(c, e.add, `${at}.add`, budget)
    const remove = wireAddressSetOf(c, e.remove, `${at}.remove`, budget)
    if (id && from && add && remove) sets.push({ id, from, add, remove })
  })
  const gone = goneList?.flatMap((x, i) => setIdOf(c, x, `$.gone[${i}]`) ?? [])
  return c.result(list && gone && { sets, gone })
}

/** An unpair reply (410): the firewall restore the server asks for. */
export function checkUnpairReply(body: unknown): Checked<UnpairReply> {
  const c = new Checker()
  const o = c.object(body, '$')
  if (!o) return c.refused()
  c.only(o, '$', ['unpair'])
  const u = c.object(o.unpair, '$.unpair')
  if (!u) return c.refused()
  c.only(u, '$.unpair', ['firewall_restore'])
  const mode = c.oneOf(u, 'firewall_restore', '$.unpair', RESTORE_MODES, { required: true })
  return c.result(mode && { unpair: { firewall_restore: mode } })
}

/** The largest agent build an upgrade order may name (a one-file agent is about 90 MB). */
export const MAX_AGENT_BYTES = 512 * 1024 * 1024

/** A status reply with orders (200): an upgrade, checked field by field. */
export function checkStatusReply(body: unknown): Checked<StatusReply> {
  const c = new Checker()
  const o = c.object(body, '$')
  if (!o) return c.refused()
  c.only(o, '$', ['upgrade'])
  if (o.upgrade === undefined) return c.result({})
  const u = c.object(o.upgrade, '$.upgrade')
  if (!u) return c.refused()
  c.only(u, '$.upgrade', ['release', 'sha256', 'size'])
  const text = (key: string, re: RegExp, what: string) => {
    const v = c.string(u, key, '$.upgrade', { required: true, max: 64 })
    return v === undefined || re.test(v) ? v : c.fail(`$.upgrade.${key}`, `must be ${what}`)
  }
  const release = text('release', RELEASE, 'a release name (letters, digits, . + -)')
  const sha256 = text('sha256', SHA256, '64 hexadecimal digits')
  const size = c.int(u, 'size', '$.upgrade', { required: true, min: 1, max: MAX_AGENT_BYTES })
  return c.result(
    release && sha256 && size !== undefined ? { upgrade: { release, sha256, size } } : undefined,
  )
}

/** The API's error reply `[{token, message}]`, if that is what `body` is. */
export function errorReplyOf(body: unknown): ErrorReply | undefined {
  if (!Array.isArray(body) || body.length === 0 || body.length > 1000) return undefined
  const items = body.filter(
    (i): i is { token: string; message: string } =>
      isObj(i) && typeof i.token === 'string' && typeof i.message === 'string',
  )
  return items.length === body.length ? items : undefined
}
