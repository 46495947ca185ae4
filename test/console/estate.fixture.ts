/**
 * A seeded estate, made through the API as an administrator and agents would make it: labels,
 * services, IP lists, a label group, two rule sets, ten unmanaged and three managed workloads,
 * coexistence scopes, provisioned; flows reported by both ends, a host survey and ruleset with a
 * foreign firewall, and a tampering event.
 */
import { randomUUID } from 'node:crypto'
import type { Table } from '@palisade/firewall'
import { compile } from '@palisade/firewall'
import type { HostPolicy } from '@palisade/model'
import { DEFAULT_FAILSAFE } from '@palisade/model'
import type { ConsoleBed } from './console.fixture.js'
import { O } from './console.fixture.js'

export interface Agent {
  token: string
  agent_id: string
  workload_href: string
  address: string
  name: string
}

export interface Estate {
  labels: Record<string, string>
  services: Record<string, string>
  ipLists: Record<string, string>
  ruleSets: Record<string, string>
  agents: Record<string, Agent>
  unmanaged: string[]
}

const LABELS = [
  ['role', 'web'],
  ['role', 'db'],
  ['role', 'lb'],
  ['app', 'shop'],
  ['app', 'crm'],
  ['env', 'prod'],
  ['env', 'staging'],
  ['loc', 'dc1'],
] as const

/** A firewalld-like foreign table: a drop before our chains, and one after. */
const FOREIGN: Table = {
  family: 'inet',
  name: 'firewalld',
  source: 'nft',
  sets: [],
  chains: [
    {
      name: 'filter_INPUT_early',
      base: { type: 'filter', hook: 'input', priority: -170, policy: 'accept' },
      rules: [
        {
          matches: [{ kind: 'port', proto: 6, dir: 'dst', ranges: [[6100, 6100]] }],
          verdict: { kind: 'drop' },
          text: 'tcp dport 6100 drop',
        },
      ],
    },
    {
      name: 'filter_INPUT',
      base: { type: 'filter', hook: 'input', priority: 10, policy: 'accept' },
      rules: [
        {
          matches: [{ kind: 'port', proto: 6, dir: 'dst', ranges: [[7000, 7000]] }],
          verdict: { kind: 'drop' },
          text: 'tcp dport 7000 drop',
        },
      ],
    },
  ],
}

export async function seedEstate(bed: ConsoleBed): Promise<Estate> {
  const { ok } = bed
  const labels: Record<string, string> = {}
  for (const [key, value] of LABELS)
    labels[`${key}: ${value}`] = (
      await ok<{ href: string }>('POST', `${O}/labels`, { key, value })
    ).href
  const L = (k: string) => ({ label: { href: labels[k] ?? '' } })
  const draft = `${O}/sec_policy/draft`
  const services: Record<string, string> = {}
  for (const [name, port] of [
    ['HTTPS', 443],
    ['PostgreSQL', 5432],
    ['SSH', 22],
  ] as const)
    services[name] = (
      await ok<{ href: string }>('POST', `${draft}/services`, {
        name,
        service_ports: [{ proto: 6, port }],
      })
    ).href
  const ipLists: Record<string, string> = {}
  for (const [name, cidr] of [
    ['Corporate network', '198.18.100.0/24'],
    ['Known bad', '198.19.66.0/24'],
  ] as const)
    ipLists[name] = (
      await ok<{ href: string }>('POST', `${draft}/ip_lists`, {
        name,
        ip_ranges: [{ from_ip: cidr }],
      })
    ).href
  await ok('POST', `${draft}/label_groups`, {
    name: 'Front tier',
    key: 'role',
    labels: [{ href: labels['role: web'] }, { href: labels['role: lb'] }],
  })
  const ruleSets: Record<string, string> = {}
  ruleSets.shop = (
    await ok<{ href: string }>('POST', `${draft}/rule_sets`, {
      name: 'shop prod',
      scopes: [[L('app: shop'), L('env: prod')]],
    })
  ).href
  const svc = (name: string) => ({ href: services[name] })
  await ok('POST', `/api/v2${ruleSets.shop}/sec_rules`, {
    consumers: [L('role: web')],
    providers: [L('role: db')],
    ingress_services: [svc('PostgreSQL')],
  })
  await ok('POST', `/api/v2${ruleSets.shop}/sec_rules`, {
    consumers: [L('role: lb')],
    providers: [L('role: web')],
    ingress_services: [svc('HTTPS')],
  })
  await ok('POST', `/api/v2${ruleSets.shop}/sec_rules`, {
    consumers: [{ ip_list: { href: ipLists['Corporate network'] } }],
    providers: [L('role: lb')],
    ingress_services: [svc('HTTPS')],
    unscoped_consumers: true,
  })
  ruleSets.global = (
    await ok<{ href: string }>('POST', `${draft}/rule_sets`, { name: 'global', scopes: [] })
  ).href
  await ok('POST', `/api/v2${ruleSets.global}/deny_rules`, {
    consumers: [{ ip_list: { href: ipLists['Known bad'] } }],
    providers: [{ actors: 'ams' }],
    ingress_services: [],
  })
  await ok('POST', `/api/v2${ruleSets.global}/sec_rules`, {
    consumers: [{ ip_list: { href: ipLists['Corporate network'] } }],
    providers: [{ actors: 'ams' }],
    ingress_services: [svc('SSH')],
  })

  const unmanaged: string[] = []
  for (let i = 1; i <= 10; i++) {
    const w = await ok<{ href: string }>('POST', `${O}/workloads`, {
      name: `legacy-${String(i).padStart(2, '0')}`,
      hostname: `legacy-${i}.example.internal`,
      interfaces: [{ name: 'eth0', address: `198.18.1.${i}` }],
      labels: [
        { href: labels[i % 2 ? 'app: crm' : 'app: shop'] },
        { href: labels[i <= 5 ? 'env: prod' : 'env: staging'] },
        { href: labels['role: web'] },
      ],
    })
    unmanaged.push(w.href)
  }

  const profile = await ok<{ href: string }>('POST', `${O}/pairing_profiles`, {
    name: 'shop prod',
    enforcement_mode: 'visibility_only',
    visibility_level: 'flow_summary',
    labels: [{ href: labels['app: shop'] }, { href: labels['env: prod'] }],
  })
  const agents: Record<string, Agent> = {}
  for (const [name, role, address] of [
    ['web-1', 'role: web', '198.18.0.21'],
    ['db-1', 'role: db', '198.18.0.22'],
    ['lb-1', 'role: lb', '198.18.0.23'],
  ] as const) {
    const { activation_code } = await ok<{ activation_code: string }>(
      'POST',
      `/api/v2${profile.href}/pairing_key`,
      {},
    )
    const a = await ok<Omit<Agent, 'address' | 'name'>>('POST', '/agent/v1/activate', {
      activation_code,
      hostname: name,
      interfaces: [{ name: 'eth0', address }],
    })
    await ok('PUT', `/api/v2${a.workload_href}`, {
      labels: [
        { href: labels['app: shop'] },
        { href: labels['env: prod'] },
        { href: labels[role] },
      ],
    })
    agents[name] = { ...a, address, name }
  }
  await ok('PUT', `${draft}/firewall_settings`, {
    firewall_coexistence: [
      { scope: [{ href: labels['env: staging'] }], illumio_primary: true },
      {
        scope: [{ href: labels['app: crm'] }],
        illumio_primary: false,
        workload_mode: 'illuminated',
      },
      { scope: [{ href: labels['role: db'] }], illumio_primary: true },
    ],
  })
  await ok('POST', `${O}/sec_policy`, { update_description: 'the estate' })

  // db-1 reports its host: firewalld beside Palisade, its live ruleset, healthy, and tampering.
  const db = agents['db-1'] as Agent
  const bearer = (a: Agent) => `Bearer ${a.token}`
  const policy = await waitForPolicy(bed, db)
  const ours = compile(policy.policy, { backend: 'nftables', failsafe: DEFAULT_FAILSAFE })
  await ok(
    'POST',
    `/agent/v1/agents/${db.agent_id}/status`,
    {
      applied: { version: policy.policy.version, hash: policy.hash, mode: policy.policy.mode.mode },
      backend: 'nftables',
      health: {
        health: 'healthy',
        reason: null,
        tampering: { condition: 'repaired', repairs: 1 },
      },
      survey: {
        firewalls: [{ kind: 'firewalld', evidence: ['firewalld.service is active'] }],
        foreignTables: ['inet firewalld'],
        recommendations: [
          { severity: 'warning', message: 'firewalld drops tcp/7000 after Palisade allows it' },
        ],
      },
      ruleset: { tables: [...ours.tables, FOREIGN], ipsets: [...ours.ipsets] },
    },
    bearer(db),
  )
  await ok(
    'POST',
    `/agent/v1/agents/${db.agent_id}/events`,
    [
      {
        uuid: randomUUID(),
        event_type: 'agent.tampering',
        severity: 'warning',
        timestamp: new Date().toISOString(),
        details: {
          condition: 'repaired',
          repairs: 1,
          process: 'iptables-nft (pid 4242)',
          removed: ['tcp dport 5432 accept'],
        },
      },
    ],
    bearer(db),
  )

  // Flows, each reported by the end that saw it (a flow between two agents: by both).
  const now = Date.now()
  const flow = (
    direction: 'inbound' | 'outbound',
    src: string,
    dst: string,
    port: number,
    decision: string,
  ) => ({
    uuid: randomUUID(),
    direction,
    src_ip: src,
    dst_ip: dst,
    port,
    proto: 6,
    policy_decision: decision,
    rule_href: null,
    num_connections: 4,
    first_seen: new Date(now - 60_000).toISOString(),
    last_seen: new Date(now - 1000).toISOString(),
    dropped_downstream: false,
  })
  const web = agents['web-1'] as Agent
  const lb = agents['lb-1'] as Agent
  await ok(
    'POST',
    `/agent/v1/agents/${web.agent_id}/flows`,
    [
      flow('outbound', web.address, db.address, 5432, 'allowed'),
      flow('inbound', lb.address, web.address, 443, 'allowed'),
      flow('inbound', '198.18.1.2', web.address, 8080, 'potentially_blocked'),
    ],
    bearer(web),
  )
  await ok(
    'POST',
    `/agent/v1/agents/${db.agent_id}/flows`,
    [
      flow('inbound', web.address, db.address, 5432, 'allowed'),
      flow('inbound', '198.19.66.6', db.address, 22, 'blocked'),
      flow('inbound', '198.18.1.4', db.address, 5432, 'potentially_blocked'),
    ],
    bearer(db),
  )
  await ok(
    'POST',
    `/agent/v1/agents/${lb.agent_id}/flows`,
    [
      flow('inbound', '198.18.100.5', lb.address, 443, 'allowed'),
      flow('outbound', lb.address, web.address, 443, 'allowed'),
    ],
    bearer(lb),
  )
  return { labels, services, ipLists, ruleSets, agents, unmanaged }
}

/** The host policy the server computed for an agent (its long-poll, answered at once). */
export async function waitForPolicy(
  bed: ConsoleBed,
  a: Agent,
): Promise<{ hash: string; policy: HostPolicy }> {
  for (let i = 0; i < 100; i++) {
    const r = await bed.api(
      'GET',
      `/agent/v1/agents/${a.agent_id}/policy?wait=0`,
      undefined,
      `Bearer ${a.token}`,
    )
    if (r.status === 200) return r.body as { hash: string; policy: HostPolicy }
    await new Promise((res) => setTimeout(res, 100))
  }
  throw new Error(`no policy for ${a.name}`)
}
