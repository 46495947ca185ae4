import {
  addrToBigInt,
  bigIntToAddr,
  intervalsToCidrs,
  mergeCidrs,
  rangeToInterval,
  sortedAddresses,
} from '@palisade/model'
import { FLOW_COUNTED_LABEL, FLOW_COUNTERS, isCountedMark } from './flow-count.js'
import { RulesetParseError } from './parse-error.js'
import { icmpCodeNumber, icmpTypeNumber, protoNumber } from './protocols.js'
import type {
  RuleLog,
  BaseChain,
  Chain,
  CtState,
  Hook,
  IpFamily,
  Match,
  NamedSet,
  Rule,
  Table,
  TableFamily,
  Verdict,
} from './ruleset.js'
import { canonicalMatches } from './ruleset.js'

type Json = unknown
const isObj = (x: Json): x is Record<string, Json> =>
  typeof x === 'object' && x !== null && !Array.isArray(x)
const str = (x: Json): string | undefined => (typeof x === 'string' ? x : undefined)
const num = (x: Json): number | undefined =>
  typeof x === 'number' ? x : typeof x === 'string' && /^-?\d+$/.test(x) ? Number(x) : undefined

const TABLE_FAMILIES: readonly TableFamily[] = ['ip', 'ip6', 'inet', 'arp', 'bridge', 'netdev']
const HOOKS: readonly Hook[] = [
  'prerouting',
  'input',
  'forward',
  'output',
  'postrouting',
  'ingress',
]
const CT_STATES: readonly CtState[] = ['established', 'related', 'new', 'invalid', 'untracked']
/** Statements that do not decide whether a rule matches nor what happens to the packet. */
const HARMLESS = new Set(['counter', 'log', 'mangle', 'notrack', 'meta', 'ct', 'flow'])

/**
 * Adds one set element (address, prefix, range, or a wrapped element) to `out` as CIDR text;
 * false if it is of a form we do not model. (No array per element: sets hold 100,000.)
 */
function addElementCidrs(e: Json, out: string[]): boolean {
  if (isObj(e) && isObj(e.elem)) return addElementCidrs(e.elem.val, out)
  const s = str(e)
  if (s !== undefined)
    return out.push(s.includes('/') ? s : `${s}/${s.includes(':') ? 128 : 32}`) > 0
  if (isObj(e) && isObj(e.prefix)) {
    const addr = str(e.prefix.addr)
    const len = num(e.prefix.len)
    return addr !== undefined && len !== undefined && out.push(`${addr}/${len}`) > 0
  }
  if (isObj(e) && Array.isArray(e.range)) {
    const [a, b] = e.range.map(str)
    if (a === undefined || b === undefined) return false
    const { family, interval } = rangeToInterval(a, b)
    out.push(...intervalsToCidrs(family, [interval]))
    return true
  }
  return false
}

/** Every element's CIDRs, or undefined if any element is of a form we do not model. */
function allCidrs(list: readonly Json[]): string[] | undefined {
  const out: string[] = []
  for (const e of list) if (!addElementCidrs(e, out)) return undefined
  return out
}

/** A concatenated `ipvN_addr . inet_service` set, with elements as `ADDR . PORT`. */
function parsePortSet(s: Record<string, Json>): NamedSet | undefined {
  const [addrType, portType] = (s.type as Json[]).map(str)
  if (portType !== 'inet_service' || (addrType !== 'ipv4_addr' && addrType !== 'ipv6_addr'))
    return undefined
  const family: IpFamily = addrType === 'ipv4_addr' ? 4 : 6
  const elements: string[] = []
  for (const e of Array.isArray(s.elem) ? s.elem : []) {
    const parts = isObj(e) && Array.isArray(e.concat) ? e.concat : undefined
    const addr = str(parts?.[0])
    const port = num(parts?.[1])
    if (addr === undefined || port === undefined) return undefined
    elements.push(`${bigIntToAddr(family, addrToBigInt(addr).value)} . ${port}`)
  }
  return { name: str(s.name) ?? '', family, elements: elements.sort(), withPort: true }
}

function portRanges(right: Json): [number, number][] | undefined {
  const one = (x: Json): [number, number] | undefined => {
    const n = num(x)
    if (n !== undefined) return [n, n]
    if (isObj(x) && Array.isArray(x.range)) {
      const [a, b] = x.range.map(num)
      return a !== undefined && b !== undefined ? [a, b] : undefined
    }
    return undefined
  }
  const list = isObj(right) && Array.isArray(right.set) ? right.set : [right]
  const out: [number, number][] = []
  for (const x of list) {
    const r = one(x)
    if (!r) return undefined
    out.push(r)
  }
  return out
}

/** One `match` expression; undefined when it is not something we model. */
function parseMatch(m: Record<string, Json>): Match | undefined {
  const op = str(m.op)
  const negate = op === '!='
  if (op !== '==' && op !== '!=' && op !== 'in') return undefined
  const { left, right } = m
  if (!isObj(left)) return undefined
  if (Array.isArray(left.concat) && !negate) return parseConcatMatch(left.concat, right)
  if (isObj(left.ct) && left.ct.key === 'state' && !negate) {
    const states = (Array.isArray(right) ? right : [right]).map(str)
    if (!states.every((s): s is CtState => CT_STATES.includes(s as CtState))) return undefined
    return { kind: 'ct_state', states: [...states].sort() }
  }
  if (isObj(left.meta)) {
    const key = left.meta.key
    if ((key === 'iifname' || key === 'oifname') && str(right) !== undefined) {
      return {
        kind: 'iface',
        dir: key === 'iifname' ? 'in' : 'out',
        name: str(right) ?? '',
        ...(negate && { negate }),
      }
    }
    if (key === 'nfproto' && !negate && (right === 'ipv4' || right === 'ipv6')) {
      return { kind: 'nfproto', family: right === 'ipv4' ? 4 : 6 }
    }
    if (key === 'l4proto') {
      const p = typeof right === 'number' ? right : protoNumber(str(right) ?? '')
      return p === undefined ? undefined : { kind: 'proto', proto: p, ...(negate && { negate }) }
    }
    return undefined
  }
  if (isObj(left.payload)) {
    const proto = str(left.payload.protocol)
    const field = str(left.payload.field)
    if ((proto === 'ip' || proto === 'ip6') && (field === 'saddr' || field === 'daddr')) {
      const family: IpFamily = proto === 'ip' ? 4 : 6
      const dir = field === 'saddr' ? 'src' : 'dst'
      const r = str(right)
      if (r?.startsWith('@'))
        return { kind: 'addr', dir, family, set: r.slice(1), ...(negate && { negate }) }
      const list = isObj(right) && Array.isArray(right.set) ? right.set : [right]
      const cidrs = allCidrs(list)
      if (!cidrs) return undefined
      return {
        kind: 'addr',
        dir,
        family,
        cidrs: mergeCidrs(family, cidrs),
        ...(negate && { negate }),
      }
    }
    const l4 = proto === undefined ? undefined : protoNumber(proto)
    if (l4 !== undefined && l4 !== 1 && l4 !== 58 && (field === 'dport' || field === 'sport')) {
      const ranges = portRanges(right)
      if (!ranges) return undefined
      return {
        kind: 'port',
        proto: l4,
        dir: field === 'dport' ? 'dst' : 'src',
        ranges,
        ...(negate && { negate }),
      }
    }
    if ((proto === 'icmp' || proto === 'icmpv6') && field === 'type' && !negate) {
      const family: IpFamily = proto === 'icmp' ? 4 : 6
      const t =
        typeof right === 'number' || typeof right === 'string'
          ? icmpTypeNumber(family, right)
          : undefined
      return t === undefined ? undefined : { kind: 'icmp', family, type: t }
    }
  }
  return undefined
}

/** `ip daddr . tcp dport @set`: an address-and-port lookup; other concatenations are not modelled. */
function parseConcatMatch(parts: readonly Json[], right: Json): Match | undefined {
  const [a, b] = parts
  const set = str(right)
  if (
    parts.length !== 2 ||
    !set?.startsWith('@') ||
    !isObj(a) ||
    !isObj(b) ||
    !isObj(a.payload) ||
    !isObj(b.payload)
  )
    return undefined
  const ip = str(a.payload.protocol)
  const field = str(a.payload.field)
  const l4 = protoNumber(str(b.payload.protocol) ?? '')
  const portField = str(b.payload.field)
  if (
    (ip !== 'ip' && ip !== 'ip6') ||
    (field !== 'saddr' && field !== 'daddr') ||
    (l4 !== 6 && l4 !== 17)
  )
    return undefined
  if (portField !== (field === 'saddr' ? 'sport' : 'dport')) return undefined
  return {
    kind: 'addr_port',
    dir: field === 'saddr' ? 'src' : 'dst',
    family: ip === 'ip' ? 4 : 6,
    proto: l4,
    set: set.slice(1),
  }
}

function parseVerdict(key: string, value: Json): Verdict | undefined {
  switch (key) {
    case 'accept':
    case 'drop':
    case 'return':
    case 'reject':
      return { kind: key }
    case 'jump':
    case 'goto': {
      const target = isObj(value) ? str(value.target) : undefined
      return target === undefined
        ? { kind: 'opaque', text: JSON.stringify({ [key]: value }) }
        : { kind: key, target }
    }
    case 'queue':
    case 'snat':
    case 'dnat':
    case 'masquerade':
    case 'redirect':
    case 'tproxy':
      return { kind: 'opaque', text: JSON.stringify({ [key]: value }) }
    default:
      return undefined
  }
}

const isPayload = (x: Json, protocol: string, field: string) =>
  isObj(x) && isObj(x.payload) && x.payload.protocol === protocol && x.payload.field === field

/** A piece of a counting rule (flow-count.ts): a match of its first-packet test, or its update. */
type CountPart =
  | { readonly part: 'unconfirmed' | 'syn' | 'uncounted' | 'mark' }
  | { readonly part: 'generation'; readonly generation: 'a' | 'b' }
  | {
      readonly part: 'update'
      readonly family: IpFamily
      readonly generation: 'a' | 'b'
      readonly tag: number
    }

function countPart(key: string, v: Json): CountPart | undefined {
  if (!isObj(v)) return undefined
  const isLabel = (x: Json) => isObj(x) && isObj(x.ct) && x.ct.key === 'label'
  if (key === 'mangle') return isCountedMark(v) ? { part: 'mark' } : undefined
  if (key === 'match') {
    const { left, right, op } = v
    if (!isObj(left)) return undefined
    if (op === '!=' && isObj(left.ct) && left.ct.key === 'status' && right === 'confirmed')
      return { part: 'unconfirmed' }
    if (op === '!' && isLabel(left) && right === FLOW_COUNTED_LABEL) return { part: 'uncounted' }
    const flags = left['&']
    if (
      op === '==' &&
      Array.isArray(flags) &&
      isPayload(flags[0], 'tcp', 'flags') &&
      JSON.stringify(flags[1]) === '["syn","ack"]' &&
      right === 'syn'
    )
      return { part: 'syn' }
    const gen = /^@flow_gen_([ab])$/.exec(str(right) ?? '')?.[1]
    if (op === '==' && isObj(left.meta) && left.meta.key === 'nfproto' && gen)
      return { part: 'generation', generation: gen as 'a' | 'b' }
    return undefined
  }
  if (key !== 'set' || v.op !== 'update') return undefined
  const target = /^@flows([46])_([ab])$/.exec(str(v.set) ?? '')
  const parts = isObj(v.elem) ? v.elem.concat : undefined
  if (!target || !Array.isArray(parts) || parts.length !== 5) return undefined
  const family: IpFamily = target[1] === '4' ? 4 : 6
  const ip = family === 4 ? 'ip' : 'ip6'
  const [src, dst, proto, port, tag] = parts as Json[]
  const ct = isObj(port) && isObj(port.ct) ? port.ct : undefined
  if (
    !isPayload(src, ip, 'saddr') ||
    !isPayload(dst, ip, 'daddr') ||
    !(isObj(proto) && isObj(proto.meta) && proto.meta.key === 'l4proto') ||
    !(ct?.key === 'proto-dst' && ct.dir === 'original') ||
    typeof tag !== 'number'
  )
    return undefined
  return { part: 'update', family, generation: target[2] as 'a' | 'b', tag }
}

/** The pieces of a counting rule in the order we write them (renderNftCount). */
const COUNT_ORDER = (syn: boolean): readonly CountPart['part'][] => [
  'unconfirmed',
  ...(syn ? (['syn'] as const) : []),
  'uncounted',
  'generation',
  'update',
  'mark',
]

/**
 * The count a rule's pieces make, or undefined when they are not one whole counting rule in our
 * order (then each piece is an opaque match, and the rule differs from any we write): the mark
 * set before the count, say, would stop every count and still look whole.
 */
function countOf(parts: readonly CountPart[]): Rule['count'] {
  const update = parts.find((p) => p.part === 'update')
  const gen = parts.find((p) => p.part === 'generation')
  const syn = parts.some((p) => p.part === 'syn')
  if (
    update?.part !== 'update' ||
    gen?.part !== 'generation' ||
    gen.generation !== update.generation ||
    parts.map((p) => p.part).join() !== COUNT_ORDER(syn).join()
  )
    return undefined
  return { family: update.family, generation: update.generation, tag: update.tag, syn }
}

/** A rule's expressions; anything not modelled becomes an opaque match, never an error. */
export function parseNftRuleExpr(expr: readonly Json[], comment?: string): Rule {
  const matches: Match[] = []
  let verdict: Verdict | null = null
  let counter: Rule['counter']
  let log: RuleLog | undefined
  const countParts: { part: CountPart; e: Json }[] = []
  for (const e of expr) {
    if (!isObj(e)) {
      matches.push({ kind: 'opaque', text: JSON.stringify(e) })
      continue
    }
    const [key, value] = Object.entries(e)[0] ?? ['', null]
    const part = countPart(key, value)
    if (part) {
      countParts.push({ part, e })
      continue
    }
    if (key === 'match' && isObj(value)) {
      const m = parseMatch(value)
      const prev = matches[matches.length - 1]
      const code =
        prev?.kind === 'icmp' &&
        isObj(value.left) &&
        isObj(value.left.payload) &&
        value.left.payload.field === 'code'
          ? icmpCodeNumber(prev.family, value.right)
          : undefined
      if (m) matches.push(m)
      else if (code !== undefined && prev?.kind === 'icmp' && prev.code === undefined)
        matches[matches.length - 1] = { ...prev, code }
      else matches.push({ kind: 'opaque', text: JSON.stringify(e) })
      continue
    }
    if (key === 'counter' && isObj(value)) {
      counter = { packets: num(value.packets) ?? 0, bytes: num(value.bytes) ?? 0 }
      continue
    }
    // A log to a netlink group is ours to compare; a log to the kernel log changes nothing.
    if (key === 'log' && isObj(value) && num(value.group) !== undefined) {
      log = {
        group: num(value.group) ?? 0,
        prefix: str(value.prefix) ?? '',
        snaplen: num(value.snaplen) ?? 0,
        threshold: num(value['queue-threshold']) ?? 0,
      }
      continue
    }
    const v = parseVerdict(key, value)
    if (v) verdict = v
    else if (!HARMLESS.has(key)) matches.push({ kind: 'opaque', text: JSON.stringify(e) })
  }
  const count = countParts.length > 0 ? countOf(countParts.map((p) => p.part)) : undefined
  if (countParts.length > 0 && !count)
    for (const p of countParts) matches.push({ kind: 'opaque', text: JSON.stringify(p.e) })
  return {
    matches: canonicalMatches(matches),
    verdict,
    ...(log && { log }),
    ...(count && { count }),
    ...(comment !== undefined && { comment }),
    ...(counter && { counter }),
    text: JSON.stringify(expr),
  }
}

interface MutableTable {
  family: TableFamily
  name: string
  chains: Map<string, { name: string; base?: BaseChain; rules: Rule[] }>
  sets: NamedSet[]
  counters: string[]
}

/**
 * Parses `nft -j list ruleset` (or `list table`). Structural problems (not JSON, no
 * `nftables` array, a rule for a chain never declared) are errors; expressions we do not
 * model become opaque matches, so newer or foreign rules never crash the reader.
 */
export function parseNftJson(text: string): Table[] {
  return tablesOf(nftItems(text), (s) => setOf(s))
}

/**
 * `parseNftJson` that keeps the sets of the listing before: a set listed again exactly as it was
 * (the same text) is not parsed again. After a change to rules, a listing of a table with
 * 100,000 set elements then costs the parse of its rules, not of the elements (a few
 * milliseconds, not a few hundred, during which the event loop takes nothing else). The sets
 * are shared between the answers, so they must be treated as read-only (as their types say).
 */
export function nftJsonParser(): (text: string) => Table[] {
  type Known = { readonly head: Record<string, Json>; readonly set: SetItem }
  /** The sets of the last listing, by their text; in place of each, its head (no elements). */
  let last = new Map<string, Known>()
  return (text) => {
    const texts = itemTexts(text)
    // Not of the shape the scan follows: parsed whole, which says what is wrong with it.
    if (!texts) return parseNftJson(text)
    const seen = new Map<string, Known>()
    const items: Json[] = []
    const again = new Map<Json, Known>()
    const textOf = new Map<Json, string>()
    for (const t of texts) {
      const isSet = t.startsWith('{"set":')
      const known = isSet ? (seen.get(t) ?? last.get(t)) : undefined
      if (known) {
        seen.set(t, known)
        items.push(known.head)
        again.set(known.head, known)
        continue
      }
      const parsed = parseItem(t)
      // Not JSON: parsed whole, which says so as it always has.
      if (!parsed) return parseNftJson(text)
      const { item } = parsed
      items.push(item)
      if (isSet) textOf.set(item, t)
    }
    const tables = tablesOf(items, (s, item) => {
      const known = again.get(item)
      if (known) return known.set
      const set = setOf(s)
      const t = textOf.get(item)
      if (t !== undefined)
        seen.set(t, { head: { set: { family: s.family, table: s.table, name: s.name } }, set })
      return set
    })
    last = seen
    return tables
  }
}

/** What a set item gives its table: a counting set's name, a set we model, or nothing. */
type SetItem = { readonly counter: string } | { readonly set: NamedSet } | undefined

function setOf(s: Record<string, Json>): SetItem {
  const name = str(s.name) ?? ''
  // Declared by us; their elements are the kernel's counts, never compared.
  if (FLOW_COUNTERS.includes(name)) return { counter: name }
  if (Array.isArray(s.type)) {
    const portSet = parsePortSet(s)
    return portSet && { set: portSet }
  }
  const type = str(s.type)
  if (type !== 'ipv4_addr' && type !== 'ipv6_addr') return undefined
  const family: IpFamily = type === 'ipv4_addr' ? 4 : 6
  const cidrs = allCidrs(Array.isArray(s.elem) ? s.elem : [])
  if (!cidrs) return undefined
  const flags = Array.isArray(s.flags) ? s.flags : []
  // Without the interval flag every element is one address, and stays one: nothing merges.
  if (!flags.includes('interval'))
    return { set: { name, family, elements: sortedAddresses(cidrs), exact: true } }
  return { set: { name, family, elements: mergeCidrs(family, cidrs) } }
}

function nftItems(text: string): readonly Json[] {
  let doc: Json
  try {
    doc = JSON.parse(text)
  } catch (e) {
    throw new RulesetParseError(
      'nft -j',
      `not JSON (${(e as Error).message}); the output may be truncated`,
    )
  }
  if (!isObj(doc) || !Array.isArray(doc.nftables)) {
    throw new RulesetParseError('nft -j', 'expected an object with an "nftables" array')
  }
  return doc.nftables
}

/** One item's text parsed; undefined if it is not JSON. */
function parseItem(text: string): { readonly item: Json } | undefined {
  try {
    return { item: JSON.parse(text) as Json }
  } catch {
    return undefined
  }
}

/**
 * The texts of the items of `{"nftables": [ITEM, ...]}`, found by a scan that follows strings
 * and nesting, without parsing them; undefined where the text is not of that shape (a top-level
 * item that is not an object, text after the end, a string never closed).
 */
export function itemTexts(text: string): string[] | undefined {
  // JSON's whitespace only: anything else here is not JSON, and parsed whole to say so.
  const head = /^[ \t\n\r]*\{[ \t\n\r]*"nftables"[ \t\n\r]*:[ \t\n\r]*\[/.exec(text)
  if (!head) return undefined
  const out: string[] = []
  let depth = 0
  let start = 0
  /** Between items: whether one was just closed (a comma is due) or a comma was just read. */
  let after: 'item' | 'comma' | 'start' = 'start'
  for (let i = head[0].length; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (depth === 0) {
      if (c === 32 || c === 10 || c === 13 || c === 9) continue
      if (c === 44 && after === 'item') after = 'comma'
      else if (c === 123 && after !== 'item') {
        depth = 1
        start = i
      } else if (c === 93 && after !== 'comma')
        return /^[ \t\n\r]*\}[ \t\n\r]*$/.test(text.slice(i + 1)) ? out : undefined
      else return undefined
    } else if (c === 34) {
      // a string: to its closing quote, over escaped characters
      for (i++; i < text.length && text.charCodeAt(i) !== 34; i++)
        if (text.charCodeAt(i) === 92) i++
      if (i >= text.length) return undefined
    } else if (c === 123 || c === 91) depth++
    else if ((c === 125 || c === 93) && --depth === 0) {
      out.push(text.slice(start, i + 1))
      after = 'item'
    }
  }
  return undefined
}

function tablesOf(
  items: readonly Json[],
  setItem: (s: Record<string, Json>, item: Json) => SetItem,
): Table[] {
  const tables = new Map<string, MutableTable>()
  const tableOf = (o: Record<string, Json>, what: string) => {
    const t = tables.get(`${str(o.family)} ${str(o.table)}`)
    if (!t)
      throw new RulesetParseError(
        'nft -j',
        `${what} names table ${str(o.family)} ${str(o.table)}, which was not listed before it`,
      )
    return t
  }
  for (const item of items) {
    if (!isObj(item)) continue
    if (isObj(item.table)) {
      const family = str(item.table.family) as TableFamily
      const name = str(item.table.name)
      if (!TABLE_FAMILIES.includes(family) || name === undefined) {
        throw new RulesetParseError(
          'nft -j',
          `table with unknown family or no name: ${JSON.stringify(item.table)}`,
        )
      }
      tables.set(`${family} ${name}`, { family, name, chains: new Map(), sets: [], counters: [] })
    } else if (isObj(item.chain)) {
      const c = item.chain
      const t = tableOf(c, 'a chain')
      const name = str(c.name) ?? ''
      const hook = str(c.hook) as Hook | undefined
      const prio = num(c.prio)
      const base: BaseChain | undefined =
        hook !== undefined && HOOKS.includes(hook) && prio !== undefined
          ? {
              type: str(c.type) ?? 'filter',
              hook,
              priority: prio,
              policy: c.policy === 'drop' ? 'drop' : 'accept',
            }
          : undefined
      t.chains.set(name, { name, ...(base && { base }), rules: [] })
    } else if (isObj(item.rule)) {
      const r = item.rule
      const t = tableOf(r, 'a rule')
      const chain = t.chains.get(str(r.chain) ?? '')
      if (!chain)
        throw new RulesetParseError(
          'nft -j',
          `a rule names chain ${str(r.chain)}, which was not listed before it`,
        )
      const expr = Array.isArray(r.expr) ? r.expr : []
      chain.rules.push(parseNftRuleExpr(expr, str(r.comment)))
    } else if (isObj(item.set)) {
      const t = tableOf(item.set, 'a set')
      const got = setItem(item.set, item)
      if (got && 'counter' in got) t.counters.push(got.counter)
      else if (got) t.sets.push(got.set)
    }
  }
  return [...tables.values()].map((t) => ({
    family: t.family,
    name: t.name,
    source: 'nft',
    chains: [...t.chains.values()] satisfies Chain[],
    sets: t.sets,
    ...(t.counters.length > 0 && { counters: [...t.counters].sort() }),
  }))
}

const IPTABLES_TABLES = new Set(['filter', 'nat', 'mangle', 'raw', 'security'])
const IPTABLES_CHAINS = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'])

/**
 * Whether a table is iptables-nft's (its rules use xt extensions that `nft -j` cannot show, so
 * it must be read with iptables-nft-save instead).
 */
export function isIptablesNftTable(t: Table): boolean {
  return (
    (t.family === 'ip' || t.family === 'ip6') &&
    IPTABLES_TABLES.has(t.name) &&
    t.chains.some((c) => c.base !== undefined && IPTABLES_CHAINS.has(c.name))
  )
}
