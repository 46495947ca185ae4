import type { DemoHost } from './demo-estate.js'
import { ALL, demoLabels, RULES, SCOPES } from './demo-estate.js'
import type { LabServer } from './server-process.js'

/**
 * Seeds a fresh server through its REST API, as an administrator would: labels, one rule set
 * with allow, deny and override-deny rules, the coexistence scopes, one provision; then a
 * pairing profile per host (its labels, its enforcement, flow summaries) and an activation code.
 * Returns the activation code of each host.
 */
export async function seedDemo(
  server: LabServer,
  hosts: readonly DemoHost[],
): Promise<Map<string, string>> {
  const O = '/api/v2/orgs/1'
  const href = new Map<string, string>()
  for (const kv of demoLabels(hosts)) {
    const [key, value] = kv.split('=')
    const l = await server.apiOk('POST', `${O}/labels`, { key, value }, 201)
    href.set(kv, String(l.href))
  }
  const actor = (a: string) =>
    a === ALL ? { actors: 'ams' } : { label: { href: href.get(a) ?? '' } }
  const rs = await server.apiOk(
    'POST',
    `${O}/sec_policy/draft/rule_sets`,
    { name: 'estate', description: 'palisade demo: the whole estate', scopes: [[]] },
    201,
  )
  for (const r of RULES) {
    const body = {
      description: r.why,
      providers: [actor(r.providers)],
      consumers: [actor(r.consumers)],
      ingress_services: r.tcp.map((port) => ({ port, proto: 6 })),
      ...(r.kind === 'override deny' && { override: true }),
    }
    await server.apiOk(
      'POST',
      `/api/v2${String(rs.href)}/${r.kind === 'allow' ? 'sec_rules' : 'deny_rules'}`,
      body,
      201,
    )
  }
  await server.apiOk(
    'PUT',
    `${O}/sec_policy/draft/firewall_settings`,
    {
      firewall_coexistence: SCOPES.map((s) => ({
        scope: s.scope.map((kv) => ({ href: href.get(kv) })),
        illumio_primary: s.primary,
        ...(s.workloadMode && { workload_mode: s.workloadMode }),
      })),
    },
    204,
  )
  await server.apiOk(
    'POST',
    `${O}/sec_policy`,
    { update_description: 'palisade demo: labels, rules, coexistence' },
    201,
  )
  const codes = new Map<string, string>()
  for (const h of hosts) {
    const p = await server.apiOk(
      'POST',
      `${O}/pairing_profiles`,
      {
        name: h.name,
        description: h.story,
        enforcement_mode: h.enforcement,
        visibility_level: 'flow_summary',
        labels: [`role=${h.role}`, `app=${h.app}`, `env=${h.env}`].map((kv) => ({
          href: href.get(kv),
        })),
      },
      201,
    )
    const key = await server.apiOk('POST', `/api/v2${String(p.href)}/pairing_key`, {}, 200)
    codes.set(h.name, String(key.activation_code))
  }
  return codes
}
