import { describe, expect, it } from 'vitest'
import type { BackendFacts } from './detect.js'
import { BackendUnavailableError, chooseBackend } from './detect.js'

const ALL = { nft: true, iptablesNft: true, iptablesLegacy: true }
const facts = (over: Partial<BackendFacts> = {}): BackendFacts => ({
  nativeNftTables: 0,
  iptablesNftRules: 0,
  iptablesLegacyRules: 0,
  os: { id: 'debian', versionId: '12' },
  tools: ALL,
  ...over,
})

describe('backend detection', () => {
  it.each<[string, Partial<BackendFacts>, string, RegExp]>([
    [
      'legacy rules present',
      { iptablesLegacyRules: 12 },
      'iptables-legacy',
      /existing rules are iptables-legacy/,
    ],
    ['iptables-nft rules present', { iptablesNftRules: 5 }, 'iptables-nft', /nf_tables backend/],
    ['firewalld-like native table', { nativeNftTables: 1 }, 'nftables', /native nftables/],
    [
      'more nft than legacy rules',
      { iptablesNftRules: 9, iptablesLegacyRules: 3 },
      'iptables-nft',
      /nf_tables backend/,
    ],
    [
      'CentOS 7, empty',
      { os: { id: 'centos', versionId: '7' } },
      'iptables-legacy',
      /typically uses iptables/,
    ],
    [
      'CentOS 8, empty',
      { os: { id: 'centos', versionId: '8' } },
      'nftables',
      /typically uses nftables/,
    ],
    [
      'RHEL 9, empty',
      { os: { id: 'rhel', versionId: '9.2' } },
      'nftables',
      /typically uses nftables/,
    ],
    [
      'SLES 15 SP2, empty',
      { os: { id: 'sles', versionId: '15.2' } },
      'iptables-legacy',
      /typically uses iptables/,
    ],
    [
      'SLES 15 SP3, empty',
      { os: { id: 'sles', versionId: '15.3' } },
      'nftables',
      /typically uses nftables/,
    ],
    [
      'SLES 12, empty',
      { os: { id: 'sles', versionId: '12.5' } },
      'iptables-legacy',
      /typically uses iptables/,
    ],
    [
      'Ubuntu 18.04, empty',
      { os: { id: 'ubuntu', versionId: '18.04' } },
      'iptables-legacy',
      /typically uses iptables/,
    ],
    [
      'unknown OS, empty',
      { os: { id: 'plan9', versionId: '4' } },
      'nftables',
      /nftables is installed/,
    ],
    [
      'unknown OS without nft',
      {
        os: { id: 'plan9', versionId: '4' },
        tools: { nft: false, iptablesNft: true, iptablesLegacy: true },
      },
      'iptables-nft',
      /not installed/,
    ],
    [
      'CentOS 7 without legacy tools',
      {
        os: { id: 'centos', versionId: '7' },
        tools: { nft: true, iptablesNft: true, iptablesLegacy: false },
      },
      'iptables-nft',
      /legacy tools missing/,
    ],
  ])('%s', (_n, over, backend, reason) => {
    const c = chooseBackend(facts(over), 'auto')
    expect(c.backend).toBe(backend)
    expect(c.reason).toMatch(reason)
  })

  it('warns when a host mixes legacy and nf_tables rules', () => {
    const c = chooseBackend(facts({ iptablesLegacyRules: 4, iptablesNftRules: 2 }), 'auto')
    expect(c.warnings[0]).toMatch(/mixes iptables-legacy \(4 rules\) and nf_tables/)
  })

  it('honours --backend, but refuses a backend whose tools are missing', () => {
    expect(chooseBackend(facts({ iptablesLegacyRules: 3 }), 'nftables')).toMatchObject({
      backend: 'nftables',
      reason: 'set by --backend',
    })
    expect(() =>
      chooseBackend(
        facts({ tools: { nft: false, iptablesNft: true, iptablesLegacy: true } }),
        'nftables',
      ),
    ).toThrow(BackendUnavailableError)
    expect(() =>
      chooseBackend(
        facts({ tools: { nft: false, iptablesNft: true, iptablesLegacy: true } }),
        'nftables',
      ),
    ).toThrow(/tools are not installed/)
  })
})
