import type { Ruleset } from '@palisade/firewall'
import { isOurChain, isOurComment, isOurTable } from '@palisade/firewall'
import type { ForeignFirewall, Recommendation, RulesetSurvey } from '@palisade/protocol'

const KUBE = /^(KUBE-|cali-|CILIUM_|cilium_)/

/**
 * Recognises the firewalls the seed names from the rules they leave behind (this works in a
 * namespace and on a host alike), and gives the seed's recommendations for them.
 */
export function surveyRuleset(rs: Ruleset, activeServices: readonly string[] = []): RulesetSurvey {
  const found = new Map<
    ForeignFirewall,
    { evidence: string[]; zones?: { zone: string; allows: string[] }[] }
  >()
  const note = (kind: ForeignFirewall, what: string) => {
    const f = found.get(kind) ?? { evidence: [] }
    if (!f.evidence.includes(what)) f.evidence.push(what)
    found.set(kind, f)
  }
  const foreignTables: string[] = []
  for (const t of rs.tables) {
    if (isOurTable(t)) continue
    const where = `${t.source} ${t.family} ${t.name}`
    const foreignChains = t.chains.filter((c) => !isOurChain(t, c.name))
    if (t.source === 'nft' || foreignChains.some((c) => c.rules.length > 0 || !c.base))
      foreignTables.push(where)
    if (t.source === 'nft' && t.name === 'firewalld') {
      note('firewalld', where)
      const zones = t.chains.flatMap((c) => {
        const m = /^filter_IN_(.+)_allow$/.exec(c.name)
        if (!m?.[1]) return []
        const allows = c.rules.filter((r) => r.verdict?.kind === 'accept').map((r) => r.text ?? '')
        return [{ zone: m[1], allows }]
      })
      if (zones.length > 0) (found.get('firewalld') ?? { evidence: [] }).zones = zones
    }
    if (t.source === 'nft' && /^(kube-proxy|calico|cilium)/.test(t.name)) note('kubernetes', where)
    for (const c of t.chains) {
      if (c.name.startsWith('DOCKER')) note('docker', `${where} ${c.name}`)
      if (c.name.startsWith('ufw-')) note('ufw', `${where} ${c.name}`)
      if (/^(input_ext|forward_ext|reject_func)$/.test(c.name))
        note('suse-firewall', `${where} ${c.name}`)
      if (KUBE.test(c.name)) note('kubernetes', `${where} ${c.name}`)
      if (
        c.base &&
        t.source !== 'nft' &&
        !isOurChain(t, c.name) &&
        c.rules.some(
          (r) =>
            !isOurComment(r.comment) &&
            !(r.verdict?.kind === 'jump' && /^(DOCKER|ufw-|KUBE-|cali-)/.test(r.verdict.target)),
        )
      ) {
        note('manual', `${where} ${c.name}`)
      }
    }
  }
  for (const s of activeServices)
    if (s === 'firewalld' || s === 'ufw' || s === 'docker') note(s, `service ${s} is active`)
  if (activeServices.includes('SuSEfirewall2'))
    note('suse-firewall', 'service SuSEfirewall2 is active')
  const recommendations: Recommendation[] = []
  if (found.has('kubernetes')) {
    recommendations.push({
      severity: 'warning',
      message:
        'this looks like a Kubernetes node (kube-proxy, Calico or Cilium rules): host-firewall coexistence is not supported with complex container networking; use a container-aware agent instead',
    })
  }
  for (const kind of ['firewalld', 'ufw', 'suse-firewall'] as const) {
    if (found.has(kind)) {
      recommendations.push({
        severity: 'info',
        message: `${kind} is active and typically restricts inbound traffic to SSH and DHCP; to avoid confusion with conflicting rules, disabling it is recommended (not required), or run Palisade in coexistence mode`,
      })
    }
  }
  if (found.has('docker'))
    recommendations.push({
      severity: 'info',
      message:
        'Docker rules found: stand-alone Docker usually coexists; use a coexistence mode so its chains keep working',
    })
  return {
    firewalls: [...found.entries()].map(([kind, f]) => ({
      kind,
      evidence: f.evidence,
      ...(f.zones && { zones: f.zones }),
    })),
    foreignTables,
    recommendations,
  }
}
