/** IANA protocol numbers used by name across the code. */
export const PROTO = { any: -1, icmp: 1, tcp: 6, udp: 17, icmpv6: 58 } as const

/**
 * One protocol and port range (or ICMP type/code). `proto: -1` is every protocol.
 * Ports are only meaningful for TCP (6) and UDP (17).
 */
export interface ServicePort {
  readonly proto: number
  readonly port?: number
  readonly toPort?: number
  readonly icmpType?: number
  readonly icmpCode?: number
}

export interface Service {
  readonly href: string
  readonly name: string
  readonly ports: readonly ServicePort[]
}

export interface ServicePortIssue {
  readonly code: 'bad_proto' | 'bad_port' | 'bad_range' | 'port_without_transport' | 'bad_icmp'
  readonly message: string
}

const hasPorts = (proto: number) => proto === PROTO.tcp || proto === PROTO.udp
const isIcmp = (proto: number) => proto === PROTO.icmp || proto === PROTO.icmpv6
const isPort = (n: number | undefined) =>
  n === undefined || (Number.isInteger(n) && n >= 0 && n <= 65535)

export function checkServicePort(sp: ServicePort): ServicePortIssue[] {
  const issues: ServicePortIssue[] = []
  if (!Number.isInteger(sp.proto) || sp.proto < -1 || sp.proto > 255) {
    issues.push({
      code: 'bad_proto',
      message: `proto must be an IANA protocol number 0-255 or -1, not ${sp.proto}`,
    })
  }
  if (!isPort(sp.port) || !isPort(sp.toPort)) {
    issues.push({ code: 'bad_port', message: 'ports must be whole numbers from 0 to 65535' })
  }
  if (sp.toPort !== undefined && (sp.port === undefined || sp.toPort <= sp.port)) {
    issues.push({ code: 'bad_range', message: 'to_port must be greater than port' })
  }
  if ((sp.port !== undefined || sp.toPort !== undefined) && !hasPorts(sp.proto)) {
    issues.push({ code: 'port_without_transport', message: 'ports need proto 6 (TCP) or 17 (UDP)' })
  }
  if ((sp.icmpType !== undefined || sp.icmpCode !== undefined) && !isIcmp(sp.proto)) {
    issues.push({ code: 'bad_icmp', message: 'icmp_type and icmp_code need proto 1 or 58' })
  }
  if (sp.icmpCode !== undefined && sp.icmpType === undefined) {
    issues.push({ code: 'bad_icmp', message: 'icmp_code needs icmp_type' })
  }
  return issues
}

/** Whether a packet's protocol and port (or ICMP type/code) fall inside a service port. */
export function servicePortMatches(
  sp: ServicePort,
  proto: number,
  port: number | undefined,
  icmp?: { type: number; code: number },
): boolean {
  if (sp.proto !== PROTO.any && sp.proto !== proto) return false
  if (sp.port !== undefined) {
    if (port === undefined) return false
    if (port < sp.port || port > (sp.toPort ?? sp.port)) return false
  }
  if (sp.icmpType !== undefined && (icmp === undefined || icmp.type !== sp.icmpType)) return false
  if (sp.icmpCode !== undefined && (icmp === undefined || icmp.code !== sp.icmpCode)) return false
  return true
}

const keyOf = (sp: ServicePort) => [
  sp.proto,
  sp.port ?? -1,
  sp.toPort ?? -1,
  sp.icmpType ?? -1,
  sp.icmpCode ?? -1,
]

/** Dedupes and sorts, so equal service lists compare equal; `proto: -1` absorbs the rest. */
export function normaliseServicePorts(list: readonly ServicePort[]): ServicePort[] {
  const anyAll = list.find((sp) => sp.proto === PROTO.any)
  if (anyAll) return [{ proto: PROTO.any }]
  const byKey = new Map<string, ServicePort>()
  for (const sp of list) {
    const clean: ServicePort = {
      proto: sp.proto,
      ...(sp.port !== undefined && { port: sp.port }),
      ...(sp.toPort !== undefined && sp.toPort !== sp.port && { toPort: sp.toPort }),
      ...(sp.icmpType !== undefined && { icmpType: sp.icmpType }),
      ...(sp.icmpCode !== undefined && { icmpCode: sp.icmpCode }),
    }
    byKey.set(keyOf(clean).join(','), clean)
  }
  return [...byKey.values()].sort((a, b) => {
    const ka = keyOf(a)
    const kb = keyOf(b)
    for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return (ka[i] ?? 0) - (kb[i] ?? 0)
    return 0
  })
}
