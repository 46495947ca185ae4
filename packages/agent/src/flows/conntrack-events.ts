import { addrToBigInt, bigIntToAddr } from '@palisade/model'
import { protoNumber } from '@palisade/firewall'

/**
 * Reads `conntrack -E -e NEW -o timestamp` lines. The kernel announces a connection as NEW when
 * it confirms it, after every filter hook let its first packet through: a connection our chains
 * passed on that never shows up here was dropped after us. Pure: a line in, a tuple out.
 */
export interface ConntrackEvent {
  readonly timeMs: number
  readonly type: 'NEW' | 'UPDATE' | 'DESTROY'
  readonly tuple: string
}

// `-o extended` adds the layer 3 name and number (`ipv4 2`) before the protocol.
const LINE =
  /^\s*\[(\d+)\.(\d+)\]\s+\[(NEW|UPDATE|DESTROY)\]\s+(?:ipv[46]\s+\d+\s+)?(\S+)\s+\d+\s+(.*)$/

const norm = (a: string) => {
  const { family, value } = addrToBigInt(a)
  return bigIntToAddr(family, value)
}

/** The key both sources agree on for one connection, in its original direction. */
export function connectionKey(c: {
  proto: number
  src: string
  dst: string
  sport?: number
  dport?: number
  icmp?: { type: number; id?: number }
}): string {
  const tail =
    c.sport !== undefined
      ? `${c.sport} ${c.dport ?? ''}`
      : c.icmp
        ? `icmp ${c.icmp.id ?? c.icmp.type}`
        : ''
  return `${c.proto} ${c.src} ${c.dst} ${tail}`
}

/** Parses one event line; undefined for anything else (headers, warnings, partial lines). */
export function parseConntrackEvent(line: string): ConntrackEvent | undefined {
  const m = LINE.exec(line)
  if (!m) return undefined
  const [, sec, frac, type, protoName, rest] = m
  const proto = protoNumber(protoName ?? '')
  if (proto === undefined || rest === undefined) return undefined
  // The first src/dst/ports are the original direction; the reply tuple follows.
  const field = (name: string) => new RegExp(`(?:^|\\s)${name}=(\\S+)`).exec(rest)?.[1]
  const src = field('src')
  const dst = field('dst')
  if (!src || !dst) return undefined
  const sport = field('sport')
  const dport = field('dport')
  const id = field('id')
  const type8 = field('type')
  let tuple: string
  try {
    tuple = connectionKey({
      proto,
      src: norm(src),
      dst: norm(dst),
      ...(sport !== undefined && { sport: Number(sport), dport: Number(dport) }),
      ...(type8 !== undefined && {
        icmp: { type: Number(type8), ...(id !== undefined && { id: Number(id) }) },
      }),
    })
  } catch {
    return undefined
  }
  return {
    timeMs: Number(sec) * 1000 + Math.floor(Number(`0.${frac ?? '0'}`) * 1000),
    type: type as ConntrackEvent['type'],
    tuple,
  }
}
