import { normaliseCidr } from '@palisade/model'
import { countingChainSet } from './flow-count-ipset.js'
import { RulesetParseError } from './parse-error.js'
import { icmpTypeNumber, protoNumber } from './protocols.js'
import type {
  RuleLog,
  BaseChain,
  CtState,
  Hook,
  IpFamily,
  Match,
  Rule,
  Table,
  TableSource,
  Verdict,
} from './ruleset.js'
import { canonicalMatches } from './ruleset.js'

/** Splits a line the way iptables-save quotes it: double quotes, backslash escapes. */
export function tokenize(line: string): string[] {
  const out: string[] = []
  let cur = ''
  let inToken = false
  let quoted = false
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] ?? ''
    if (quoted) {
      if (ch === '\\' && i + 1 < line.length) cur += line[++i]
      else if (ch === '"') quoted = false
      else cur += ch
    } else if (ch === '"') {
      quoted = true
      inToken = true
    } else if (ch === ' ' || ch === '\t') {
      if (inToken) out.push(cur)
      cur = ''
      inToken = false
    } else {
      cur += ch
      inToken = true
    }
  }
  if (quoted) throw new Error('unterminated quote')
  if (inToken) out.push(cur)
  return out
}

/** Where each iptables table's built-in chains sit among nftables base chains. */
const PRIORITY: Record<string, number> = {
  raw: -300,
  mangle: -150,
  nat: -100,
  filter: 0,
  security: 50,
}
const HOOK_OF: Record<string, Hook> = {
  PREROUTING: 'prerouting',
  INPUT: 'input',
  FORWARD: 'forward',
  OUTPUT: 'output',
  POSTROUTING: 'postrouting',
}
/** Targets that log, mark or trace and let the packet continue. */
const NON_TERMINAL = new Set([
  'LOG',
  'NFLOG',
  'MARK',
  'CONNMARK',
  'TRACE',
  'CT',
  'NOTRACK',
  'AUDIT',
  'TCPMSS',
  'CLASSIFY',
  'DSCP',
  'TOS',
])

function baseChain(table: string, chain: string, policy: string): BaseChain | undefined {
  const hook = HOOK_OF[chain]
  if (!hook || policy === '-') return undefined
  const priority =
    table === 'nat' && (chain === 'POSTROUTING' || chain === 'INPUT') ? 100 : (PRIORITY[table] ?? 0)
  const type =
    table === 'nat' ? 'nat' : table === 'mangle' && chain === 'OUTPUT' ? 'route' : 'filter'
  return { type, hook, priority, policy: policy === 'DROP' ? 'drop' : 'accept' }
}

const portRanges = (text: string): [number, number][] =>
  text.split(',').map((p) => {
    const [a = '', b = a] = p.split(':')
    return [Number(a), Number(b)]
  })

/** Parses the text after `-A CHAIN` into matches and a verdict; unknown parts become opaque. */
export function parseIptablesSpec(tokens: readonly string[], family: IpFamily): Omit<Rule, 'text'> {
  const matches: Match[] = []
  let verdict: Verdict | null = null
  let comment: string | undefined
  let log: RuleLog | undefined
  let proto: number | undefined
  let i = 0
  const next = () => tokens[i++] ?? ''
  const opaque = (text: string) => matches.push({ kind: 'opaque', text })
  while (i < tokens.length) {
    let negate = false
    let tok = next()
    if (tok === '!') {
      negate = true
      tok = next()
    }
    const neg = negate ? { negate } : {}
    switch (tok) {
      case '-s':
      case '--source':
      case '-d':
      case '--destination': {
        const dir = tok.startsWith('-s') || tok === '--source' ? 'src' : 'dst'
        const cidrs = next().split(',').map(normaliseCidr)
        matches.push({ kind: 'addr', dir, family, cidrs, ...neg })
        break
      }
      case '-i':
      case '--in-interface':
      case '-o':
      case '--out-interface':
        matches.push({
          kind: 'iface',
          dir: tok.startsWith('-i') || tok === '--in-interface' ? 'in' : 'out',
          name: next(),
          ...neg,
        })
        break
      case '-p':
      case '--protocol': {
        const text = next()
        const p = protoNumber(text)
        if (p === undefined || (text === 'all' && !negate)) {
          if (text !== 'all') opaque(`-p ${text}`)
        } else {
          proto = p
          matches.push({ kind: 'proto', proto: p, ...neg })
        }
        break
      }
      case '-m':
      case '--match':
        i = parseModule(next(), tokens, i, family, proto, matches, (c) => (comment = c))
        break
      case '-j':
      case '--jump':
      case '-g':
      case '--goto': {
        const target = next()
        const opts: string[] = []
        while (i < tokens.length && tokens[i]?.startsWith('--')) opts.push(next(), next())
        if (target === 'NFLOG') log = nflogOf(opts)
        if (tok === '-g' || tok === '--goto') verdict = { kind: 'goto', target }
        else if (['ACCEPT', 'DROP', 'REJECT', 'RETURN'].includes(target))
          verdict = { kind: target.toLowerCase() as 'accept' }
        else if (NON_TERMINAL.has(target)) verdict = null
        else if (/^[A-Z]+$/.test(target) && !target.includes('-'))
          verdict = { kind: 'opaque', text: [target, ...opts].join(' ') }
        else verdict = { kind: 'jump', target }
        break
      }
      default:
        opaque([negate ? '!' : '', tok].join(' ').trim())
    }
  }
  return {
    matches: canonicalMatches(matches),
    verdict,
    ...(log && { log }),
    ...(comment !== undefined && { comment }),
  }
}

/** `--nflog-group 7 --nflog-prefix p ...` as read from iptables-save. */
function nflogOf(opts: readonly string[]): RuleLog {
  const opt = (name: string) => {
    const i = opts.indexOf(name)
    return i >= 0 ? opts[i + 1] : undefined
  }
  return {
    group: Number(opt('--nflog-group') ?? 0),
    prefix: opt('--nflog-prefix') ?? '',
    snaplen: Number(opt('--nflog-size') ?? opt('--nflog-range') ?? 0),
    threshold: Number(opt('--nflog-threshold') ?? 1),
  }
}

/** Parses one `-m NAME` and its options; returns the index after them. */
function parseModule(
  name: string,
  tokens: readonly string[],
  start: number,
  family: IpFamily,
  proto: number | undefined,
  matches: Match[],
  setComment: (c: string) => void,
): number {
  let i = start
  const opts: { negate: boolean; key: string; values: string[] }[] = []
  while (i < tokens.length) {
    const negate = tokens[i] === '!' && tokens[i + 1]?.startsWith('--') === true
    const key = tokens[negate ? i + 1 : i] ?? ''
    if (!key.startsWith('--')) break
    i += negate ? 2 : 1
    const values: string[] = []
    while (i < tokens.length && !tokens[i]?.startsWith('-') && tokens[i] !== '!')
      values.push(tokens[i++] ?? '')
    opts.push({ negate, key, values })
  }
  const whole = `-m ${name} ${tokens.slice(start, i).join(' ')}`.trim()
  let unmodelled = opts.length === 0 && !['tcp', 'udp', 'icmp', 'icmp6', 'comment'].includes(name)
  for (const o of opts) {
    const neg = o.negate ? { negate: true } : {}
    const v0 = o.values[0] ?? ''
    if (name === 'comment' && o.key === '--comment') setComment(v0)
    else if (
      (name === 'tcp' || name === 'udp') &&
      ['--dport', '--sport', '--destination-port', '--source-port'].includes(o.key)
    ) {
      const dir = o.key === '--dport' || o.key === '--destination-port' ? 'dst' : 'src'
      matches.push({
        kind: 'port',
        proto: name === 'tcp' ? 6 : 17,
        dir,
        ranges: portRanges(v0),
        ...neg,
      })
    } else if (
      name === 'multiport' &&
      (o.key === '--dports' || o.key === '--sports') &&
      proto !== undefined
    ) {
      matches.push({
        kind: 'port',
        proto,
        dir: o.key === '--dports' ? 'dst' : 'src',
        ranges: portRanges(v0),
        ...neg,
      })
    } else if (
      (name === 'conntrack' && o.key === '--ctstate') ||
      (name === 'state' && o.key === '--state')
    ) {
      const states = v0.toLowerCase().split(',').sort() as CtState[]
      if (o.negate) unmodelled = true
      else matches.push({ kind: 'ct_state', states })
    } else if (
      name === 'set' &&
      o.key === '--match-set' &&
      (o.values[1] === 'src' || o.values[1] === 'dst')
    ) {
      matches.push({ kind: 'addr', dir: o.values[1], family, set: v0, ...neg })
    } else if (
      (name === 'icmp' && o.key === '--icmp-type') ||
      (name === 'icmp6' && o.key === '--icmpv6-type')
    ) {
      const [t = '', c] = v0.split('/')
      const type = icmpTypeNumber(name === 'icmp' ? 4 : 6, t)
      if (t === 'any') continue
      if (type === undefined || o.negate) unmodelled = true
      else
        matches.push({
          kind: 'icmp',
          family: name === 'icmp' ? 4 : 6,
          type,
          ...(c !== undefined && { code: Number(c) }),
        })
    } else unmodelled = true
  }
  // One opaque match for the module: what it adds to the rule is unknown to the model.
  if (unmodelled) matches.push({ kind: 'opaque', text: whole })
  return i
}

export interface IptablesSaveResult {
  readonly tables: Table[]
  /** iptables-nft-save warns when legacy tables exist too: a mixed-backend host. */
  readonly legacyTablesPresent: boolean
}

/**
 * Parses `iptables-save` / `ip6tables-save` output (either backend; with or without `-c`).
 * A table that does not end in COMMIT means truncated output: an error, not a partial read.
 */
export function parseIptablesSave(
  text: string,
  family: 'ip' | 'ip6',
  source: Exclude<TableSource, 'nft'>,
): IptablesSaveResult {
  const tool = `${family === 'ip' ? 'iptables' : 'ip6tables'}-save`
  const ipFamily: IpFamily = family === 'ip' ? 4 : 6
  const tables: Table[] = []
  let legacyTablesPresent = false
  let cur:
    | { name: string; chains: Map<string, { name: string; base?: BaseChain; rules: Rule[] }> }
    | undefined
  const lines = text.split('\n')
  for (let n = 0; n < lines.length; n++) {
    const line = (lines[n] ?? '').trim()
    if (line === '') continue
    if (line.startsWith('#')) {
      if (line.includes('iptables-legacy tables present')) legacyTablesPresent = true
      continue
    }
    const where = `line ${n + 1}`
    if (line.startsWith('*')) {
      if (cur)
        throw new RulesetParseError(
          tool,
          `${where}: table ${line.slice(1)} starts before table ${cur.name} was committed`,
        )
      cur = { name: line.slice(1), chains: new Map() }
      continue
    }
    if (!cur)
      throw new RulesetParseError(tool, `${where}: "${line.slice(0, 60)}" is outside any table`)
    if (line === 'COMMIT') {
      const chains = [...cur.chains.values()].map((c) => {
        const countsInto =
          cur?.name === 'filter'
            ? countingChainSet(
                ipFamily,
                c.name,
                c.rules.map((r) => r.text),
              )
            : undefined
        return countsInto === undefined ? c : { name: c.name, rules: [], countsInto }
      })
      tables.push({ family, name: cur.name, source, chains, sets: [] })
      cur = undefined
    } else if (line.startsWith(':')) {
      const [name = '', policy = '-'] = line.slice(1).split(/\s+/)
      const base = baseChain(cur.name, name, policy)
      cur.chains.set(name, { name, ...(base && { base }), rules: [] })
    } else {
      let tokens: string[]
      try {
        tokens = tokenize(line.replace(/^\[\d+:\d+\]\s+/, ''))
      } catch (e) {
        throw new RulesetParseError(tool, `${where}: ${(e as Error).message}`)
      }
      if (tokens[0] !== '-A' || tokens.length < 2)
        throw new RulesetParseError(
          tool,
          `${where}: expected "-A CHAIN ...", got "${line.slice(0, 60)}"`,
        )
      const chain = cur.chains.get(tokens[1] ?? '')
      if (!chain)
        throw new RulesetParseError(
          tool,
          `${where}: rule for chain ${tokens[1]}, which was not declared`,
        )
      const counters = /^\[(\d+):(\d+)\]/.exec(line)
      const spec = tokens.slice(2)
      chain.rules.push({
        ...parseIptablesSpec(spec, ipFamily),
        ...(counters && { counter: { packets: Number(counters[1]), bytes: Number(counters[2]) } }),
        text: line.replace(/^\[\d+:\d+\]\s+/, '').replace(/^-A\s+\S+\s*/, ''),
      })
    }
  }
  if (cur)
    throw new RulesetParseError(
      tool,
      `output ends inside table ${cur.name} with no COMMIT; it was probably truncated`,
    )
  return { tables, legacyTablesPresent }
}
