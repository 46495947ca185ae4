import { bigIntToAddr } from '@palisade/model'

/**
 * Reads the pcap stream `tcpdump -i nflog:GROUP -w -` writes (link type DLT_NFLOG): each record
 * is one packet our rules logged, with the rule's prefix. Pure: bytes in, packets out.
 */

/** One logged packet: when, which rule's prefix, and the connection it opens. */
export interface LoggedPacket {
  readonly timeMs: number
  readonly prefix: string
  readonly family: 4 | 6
  readonly proto: number
  readonly src: string
  readonly dst: string
  readonly sport?: number
  readonly dport?: number
  /** TCP: the sequence number, the same in every retransmission of one connection's SYN. */
  readonly seq?: number
  /**
   * TCP: whether the segment opens a connection (SYN without ACK). Conntrack's loose pickup lets
   * a stray segment of a connection it no longer tracks reach our rules as new; it is not one.
   */
  readonly opening?: boolean
  readonly icmp?: { readonly type: number; readonly code: number; readonly id?: number }
}

export class PcapFormatError extends Error {}

const DLT_NFLOG = 239
const NFULA_PAYLOAD = 9
const NFULA_PREFIX = 10
const PORTS = new Set([6, 17, 132, 136])
/** IPv6 extension headers we step over to reach the transport header. */
const V6_EXTENSIONS = new Set([0, 43, 60])
const V6_FRAGMENT = 44

function addr(bytes: Buffer, family: 4 | 6): string {
  // The common case without BigInt arithmetic: this runs for every logged connection.
  if (family === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`
  let v = 0n
  for (const b of bytes) v = (v << 8n) | BigInt(b)
  return bigIntToAddr(family, v)
}

/** The addresses, protocol and ports of an IPv4 or IPv6 packet; undefined if it is cut short. */
export function parseIpHeader(p: Buffer): Omit<LoggedPacket, 'timeMs' | 'prefix'> | undefined {
  const version = (p[0] ?? 0) >> 4
  let family: 4 | 6
  let proto: number
  let l4: number
  let firstFragment = true
  let src: string
  let dst: string
  if (version === 4 && p.length >= 20) {
    family = 4
    l4 = ((p[0] ?? 0) & 0x0f) * 4
    proto = p[9] ?? 0
    firstFragment = (p.readUInt16BE(6) & 0x1fff) === 0
    src = addr(p.subarray(12, 16), 4)
    dst = addr(p.subarray(16, 20), 4)
  } else if (version === 6 && p.length >= 40) {
    family = 6
    proto = p[6] ?? 0
    l4 = 40
    src = addr(p.subarray(8, 24), 6)
    dst = addr(p.subarray(24, 40), 6)
    for (let hops = 0; hops < 8; hops++) {
      if (V6_EXTENSIONS.has(proto) && p.length >= l4 + 2) {
        const next = p[l4] ?? 0
        l4 += ((p[l4 + 1] ?? 0) + 1) * 8
        proto = next
      } else if (proto === V6_FRAGMENT && p.length >= l4 + 8) {
        firstFragment = (p.readUInt16BE(l4 + 2) & 0xfff8) === 0
        proto = p[l4] ?? 0
        l4 += 8
      } else break
    }
  } else return undefined
  const base = { family, proto, src, dst }
  if (!firstFragment) return base
  if (PORTS.has(proto) && p.length >= l4 + 4)
    return {
      ...base,
      sport: p.readUInt16BE(l4),
      dport: p.readUInt16BE(l4 + 2),
      ...(proto === 6 && p.length >= l4 + 8 && { seq: p.readUInt32BE(l4 + 4) }),
      ...(proto === 6 && p.length >= l4 + 14 && { opening: ((p[l4 + 13] ?? 0) & 0x12) === 0x02 }),
    }
  if ((proto === 1 || proto === 58) && p.length >= l4 + 2) {
    const type = p[l4] ?? 0
    const code = p[l4 + 1] ?? 0
    // Echo request and reply carry an id, which conntrack uses as part of the connection.
    const echo = proto === 1 ? type === 8 || type === 0 : type === 128 || type === 129
    const id = echo && p.length >= l4 + 6 ? p.readUInt16BE(l4 + 4) : undefined
    return { ...base, icmp: { type, code, ...(id !== undefined && { id }) } }
  }
  return base
}

/** The NFLOG TLVs of one record: prefix and payload. TLV headers are in the writer's order. */
function parseNflog(data: Buffer, le: boolean): { prefix: string; payload?: Buffer } {
  let prefix = ''
  let payload: Buffer | undefined
  let off = 4
  while (off + 4 <= data.length) {
    const len = le ? data.readUInt16LE(off) : data.readUInt16BE(off)
    const type = (le ? data.readUInt16LE(off + 2) : data.readUInt16BE(off + 2)) & 0x7fff
    if (len < 4 || off + len > data.length) break
    const value = data.subarray(off + 4, off + len)
    if (type === NFULA_PREFIX) {
      const nul = value.indexOf(0)
      prefix = value.subarray(0, nul < 0 ? value.length : nul).toString('latin1')
    } else if (type === NFULA_PAYLOAD) payload = value
    off += (len + 3) & ~3
  }
  return { prefix, ...(payload && { payload }) }
}

/** Feeds on the stream chunk by chunk and returns the packets completed so far. */
export class NflogPcapReader {
  #buf: Buffer = Buffer.alloc(0)
  #header: { le: boolean; nanos: boolean } | undefined

  push(chunk: Buffer): LoggedPacket[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk])
    const out: LoggedPacket[] = []
    if (!this.#header) {
      if (this.#buf.length < 24) return out
      this.#header = this.#readHeader(this.#buf)
      this.#buf = this.#buf.subarray(24)
    }
    const { le, nanos } = this.#header
    while (this.#buf.length >= 16) {
      const u32 = (o: number) => (le ? this.#buf.readUInt32LE(o) : this.#buf.readUInt32BE(o))
      const caplen = u32(8)
      if (caplen > 262_144) throw new PcapFormatError(`a pcap record claims ${caplen} bytes`)
      if (this.#buf.length < 16 + caplen) break
      const timeMs = u32(0) * 1000 + Math.floor(u32(4) / (nanos ? 1e6 : 1e3))
      const data = this.#buf.subarray(16, 16 + caplen)
      this.#buf = this.#buf.subarray(16 + caplen)
      const { prefix, payload } = parseNflog(data, le)
      const ip = payload && parseIpHeader(payload)
      if (ip) out.push({ timeMs, prefix, ...ip })
    }
    return out
  }

  #readHeader(b: Buffer): { le: boolean; nanos: boolean } {
    const magicLe = b.readUInt32LE(0)
    const magicBe = b.readUInt32BE(0)
    const known = [0xa1b2c3d4, 0xa1b23c4d]
    const le = known.includes(magicLe)
    if (!le && !known.includes(magicBe))
      throw new PcapFormatError('the log reader did not write a pcap stream')
    const magic = le ? magicLe : magicBe
    const link = le ? b.readUInt32LE(20) : b.readUInt32BE(20)
    if ((link & 0x0fffffff) !== DLT_NFLOG)
      throw new PcapFormatError(`expected NFLOG records (link type 239), got link type ${link}`)
    return { le, nanos: magic === 0xa1b23c4d }
  }
}
