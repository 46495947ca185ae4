import type { Backend, Ruleset } from '@palisade/firewall'
import { isOurComment, isOurTable } from '@palisade/firewall'

/** What the host tells us about its firewall stack. */
export interface BackendFacts {
  readonly nativeNftTables: number
  readonly iptablesNftRules: number
  readonly iptablesLegacyRules: number
  readonly os: { readonly id: string; readonly versionId: string }
  readonly tools: {
    readonly nft: boolean
    readonly iptablesNft: boolean
    readonly iptablesLegacy: boolean
  }
}

export interface BackendChoice {
  readonly backend: Backend
  readonly reason: string
  readonly warnings: readonly string[]
}

export class BackendUnavailableError extends Error {}

const major = (v: string) => Number(v.split('.')[0] ?? '0')

/**
 * The seed's table of typical stacks: EL 8+ and SUSE 15 SP3+ (and Debian 10+, Ubuntu 20.04+,
 * Fedora) use nftables; CentOS 7, SUSE before SP3 and older systems use iptables.
 */
function typicalStack(os: BackendFacts['os']): 'nftables' | 'iptables' | undefined {
  const v = major(os.versionId)
  switch (os.id) {
    case 'centos':
    case 'rhel':
    case 'rocky':
    case 'almalinux':
    case 'ol':
      return v >= 8 ? 'nftables' : 'iptables'
    case 'sles':
    case 'opensuse-leap': {
      const sp = Number(os.versionId.split('.')[1] ?? '0')
      return v > 15 || (v === 15 && sp >= 3) ? 'nftables' : 'iptables'
    }
    case 'debian':
      return v >= 10 ? 'nftables' : 'iptables'
    case 'ubuntu':
      return v >= 20 ? 'nftables' : 'iptables'
    case 'fedora':
      return 'nftables'
    default:
      return undefined
  }
}

/**
 * Chooses a backend for `--backend auto`: follow what already holds rules on the host (so we
 * stand in the same stack as the firewalls we coexist with), else the OS's typical stack.
 */
export function chooseBackend(f: BackendFacts, requested: Backend | 'auto'): BackendChoice {
  const warnings: string[] = []
  const nfRules = f.nativeNftTables + f.iptablesNftRules
  if (f.iptablesLegacyRules > 0 && nfRules > 0) {
    warnings.push(
      `this host mixes iptables-legacy (${f.iptablesLegacyRules} rules) and nf_tables (${f.iptablesNftRules} iptables-nft rules, ${f.nativeNftTables} nftables tables); packets pass both, and an accept in one never overrides a drop in the other`,
    )
  }
  const available = (b: Backend) =>
    b === 'nftables'
      ? f.tools.nft
      : b === 'iptables-nft'
        ? f.tools.iptablesNft
        : f.tools.iptablesLegacy
  const pick = (backend: Backend, reason: string): BackendChoice => {
    if (!available(backend)) {
      throw new BackendUnavailableError(
        `backend ${backend} was chosen (${reason}) but its tools are not installed; install ${backend === 'nftables' ? 'nftables' : 'iptables'} or pass --backend`,
      )
    }
    return { backend, reason, warnings }
  }
  if (requested !== 'auto') return pick(requested, 'set by --backend')
  if (
    f.iptablesLegacyRules > 0 &&
    f.iptablesLegacyRules >= f.iptablesNftRules &&
    f.nativeNftTables === 0
  ) {
    return pick(
      'iptables-legacy',
      `the host's existing rules are iptables-legacy (${f.iptablesLegacyRules} rules)`,
    )
  }
  if (f.iptablesNftRules > 0)
    return pick(
      'iptables-nft',
      `the host's existing rules are iptables with the nf_tables backend (${f.iptablesNftRules} rules)`,
    )
  if (f.nativeNftTables > 0)
    return pick('nftables', `the host already has ${f.nativeNftTables} native nftables table(s)`)
  const typical = typicalStack(f.os)
  if (typical === 'iptables') {
    return f.tools.iptablesLegacy
      ? pick(
          'iptables-legacy',
          `no rules yet; ${f.os.id} ${f.os.versionId} typically uses iptables`,
        )
      : pick(
          'iptables-nft',
          `no rules yet; ${f.os.id} ${f.os.versionId} typically uses iptables (legacy tools missing)`,
        )
  }
  if (f.tools.nft)
    return pick(
      'nftables',
      typical
        ? `no rules yet; ${f.os.id} ${f.os.versionId} typically uses nftables`
        : 'no rules yet; nftables is installed',
    )
  return pick(
    f.tools.iptablesNft ? 'iptables-nft' : 'iptables-legacy',
    'no rules yet; nftables is not installed',
  )
}

/** Counts from a full read of the host, leaving out our own objects. */
export function countRules(
  rs: Ruleset,
): Pick<BackendFacts, 'nativeNftTables' | 'iptablesNftRules' | 'iptablesLegacyRules'> {
  const rules = (source: string) =>
    rs.tables
      .filter((t) => t.source === source)
      .reduce(
        (n, t) =>
          n +
          t.chains.reduce((m, c) => m + c.rules.filter((r) => !isOurComment(r.comment)).length, 0),
        0,
      )
  return {
    nativeNftTables: rs.tables.filter((t) => t.source === 'nft' && !isOurTable(t)).length,
    iptablesNftRules: rules('iptables-nft'),
    iptablesLegacyRules: rules('iptables-legacy'),
  }
}
