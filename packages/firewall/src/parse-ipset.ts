import { IpParseError, mergeCidrs } from '@palisade/model'
import { RulesetParseError } from './parse-error.js'
import type { NamedSet } from './ruleset.js'

const COUNTING_TYPE = 'hash:ip,port,ip'
/** An `add` line of a name and an element, as `ipset save` writes them: single spaces. */
const ADD = /^add (\S+) (\S+)$/

/**
 * Whether a set is of the kind our counting chains count into (`hash:ip,port,ip` with
 * counters, see flow-count-ipset.ts), from its type and its `create` line's or header's words.
 */
export const isCountingSet = (type: string, words: readonly string[]): boolean =>
  type === COUNTING_TYPE && words.includes('counters')

/**
 * Parses `ipset save`. Address sets (hash:ip, hash:net) become named sets with normalised
 * elements, counting sets named sets without them (their members are counts); other types,
 * and sets whose entries carry options we do not model (such as `nomatch`), are left out, so
 * rules that use them are treated as opaque by the model.
 */
export function parseIpsetSave(text: string): NamedSet[] {
  const sets = new Map<
    string,
    { family: 4 | 6; cidrs: string[]; modelled: boolean; counts: boolean }
  >()
  const add = (n: number, name: string, element: string) => {
    const set = sets.get(name)
    if (!set)
      throw new RulesetParseError(
        'ipset save',
        `line ${n + 1}: element for set ${name}, which was not created`,
      )
    if (set.counts) return
    if (/\s/.test(element)) set.modelled = false
    else if (set.modelled) set.cidrs.push(element)
  }
  const lines = text.split('\n')
  for (let n = 0; n < lines.length; n++) {
    const line = (lines[n] ?? '').trim()
    if (line === '') continue
    // `add NAME ELEMENT`, nearly every line of a large set: read without splitting it in words.
    const plain = ADD.exec(line)
    if (plain) {
      add(n, plain[1] ?? '', plain[2] ?? '')
      continue
    }
    const parts = line.split(/\s+/)
    const [verb, name = ''] = parts
    if (verb === 'add') add(n, name, parts.slice(2).join(' '))
    else if (verb === 'create') {
      const type = parts[2] ?? ''
      const famIdx = parts.indexOf('family')
      const counts = isCountingSet(type, parts)
      sets.set(name, {
        family: parts[famIdx + 1] === 'inet6' ? 6 : 4,
        cidrs: [],
        modelled: famIdx > 0 && (type === 'hash:ip' || type === 'hash:net' || counts),
        counts,
      })
    } else throw new RulesetParseError('ipset save', `line ${n + 1}: unknown command "${verb}"`)
  }
  const out: NamedSet[] = []
  for (const [name, s] of sets) {
    if (!s.modelled) continue
    if (s.counts) {
      out.push({ name, family: s.family, elements: [], counts: true })
      continue
    }
    // An element that is not an address or a CIDR: the set is not one we model.
    const elements = tryMerge(s.family, s.cidrs)
    if (elements) out.push({ name, family: s.family, elements })
  }
  return out
}

function tryMerge(family: 4 | 6, cidrs: readonly string[]): string[] | undefined {
  try {
    return mergeCidrs(family, cidrs)
  } catch (e) {
    if (e instanceof IpParseError) return undefined
    throw e
  }
}

/** One set as `ipset list -t` describes it: no elements, but how many there are. */
export interface IpsetHeader {
  readonly name: string
  readonly type: string
  readonly family: 4 | 6
  readonly entries: number
  /** A counting set (isCountingSet): its entries are the kernel's counts. */
  readonly counts?: true
}

/**
 * Parses `ipset list -t` (terse: each set's header without its members). A set's entry count
 * costs the kernel nothing to report, however large the set, where its members cost a listing.
 */
export function parseIpsetHeaders(text: string): IpsetHeader[] {
  const out: IpsetHeader[] = []
  for (const block of text.split(/\n(?=Name: )/)) {
    const field = (key: string) => new RegExp(`^${key}: (.*)$`, 'm').exec(block)?.[1]?.trim()
    // As `ipset list -n` gives it: a name is whatever follows, spaces included.
    const name = /^Name: (.*)$/m.exec(block)?.[1]
    if (name === undefined) continue
    const entries = Number(field('Number of entries'))
    if (!Number.isInteger(entries) || entries < 0)
      throw new RulesetParseError('ipset list -t', `set ${name} has no entry count`)
    const type = field('Type') ?? ''
    const header = field('Header') ?? ''
    out.push({
      name,
      type,
      family: /\bfamily inet6\b/.test(header) ? 6 : 4,
      entries,
      ...(isCountingSet(type, header.split(/\s+/)) && { counts: true as const }),
    })
  }
  return out
}
