import type { Backend } from '@palisade/firewall'

/**
 * What `palisade demo` builds, as data: hosts on the three backends in the three modes, each
 * beside the foreign firewall it would meet in the field, the policy the server gets, and the
 * connections kept flowing with what each must do. Every expectation follows from the policy,
 * the foreign rules and docs/coexistence.md; the demo's kernel test checks them.
 */

export type Foreign = 'firewalld' | 'docker' | 'ufw' | 'hand-written'
export type Enforcement = 'full' | 'selective' | 'visibility_only'
export type Mode = 'exclusive' | 'coexistence_primary' | 'coexistence_non_primary'

export interface HostTemplate {
  readonly role: string
  readonly app: string
  readonly env: string
  readonly backend: Backend
  readonly enforcement: Enforcement
  /** What the coexistence scopes below resolve to for this host. */
  readonly mode: Mode
  readonly foreign: Foreign
  /** Why it is set up this way (shown by the demo). */
  readonly story: string
  readonly tcp: readonly number[]
  /** firewalld: the ports its public zone allows; ufw: `ufw allow`; hand-written: the port. */
  readonly foreignTcp: readonly number[]
}

/** One template per kind of host; `--hosts N` cycles through them (web1, web2, db1, ... web3). */
export const TEMPLATES: readonly HostTemplate[] = [
  {
    role: 'web',
    app: 'shop',
    env: 'prod',
    backend: 'nftables',
    enforcement: 'full',
    mode: 'exclusive',
    foreign: 'firewalld',
    story: 'RHEL-style: firewalld zones in nftables; ours decides first',
    tcp: [80, 443, 8080],
    foreignTcp: [22, 80, 443],
  },
  {
    role: 'web',
    app: 'shop',
    env: 'staging',
    backend: 'iptables-nft',
    enforcement: 'selective',
    mode: 'coexistence_primary',
    foreign: 'docker',
    story: 'a Docker host: its chains and NAT keep working after ours (staging is primary)',
    tcp: [80, 8080],
    foreignTcp: [],
  },
  {
    role: 'db',
    app: 'crm',
    env: 'prod',
    backend: 'iptables-legacy',
    enforcement: 'full',
    mode: 'coexistence_non_primary',
    foreign: 'ufw',
    story: 'Ubuntu-style: ufw in charge (crm is non-primary); what ufw allows never reaches us',
    tcp: [5432, 3306, 9100],
    foreignTcp: [22, 5432, 9100],
  },
  {
    role: 'api',
    app: 'crm',
    env: 'prod',
    backend: 'iptables-nft',
    enforcement: 'full',
    mode: 'coexistence_non_primary',
    foreign: 'hand-written',
    story: 'a debug port an admin opened by hand, above our rules (crm is non-primary)',
    tcp: [8443, 8080, 23],
    foreignTcp: [8080],
  },
  {
    role: 'db',
    app: 'shop',
    env: 'prod',
    backend: 'nftables',
    enforcement: 'visibility_only',
    mode: 'coexistence_non_primary',
    foreign: 'firewalld',
    story: 'being rolled out: only watching, firewalld still in charge (illuminated rollout)',
    tcp: [5432, 3306, 6379],
    foreignTcp: [22, 5432, 6379, 9100],
  },
  {
    role: 'monitor',
    app: 'ops',
    env: 'prod',
    backend: 'iptables-legacy',
    enforcement: 'full',
    mode: 'exclusive',
    foreign: 'docker',
    story: 'an older Docker host on iptables-legacy, run exclusively (the survey advises against)',
    tcp: [9100],
    foreignTcp: [],
  },
]

export interface DemoHost extends HostTemplate {
  readonly name: string
  readonly template: number
}

/** The first `n` hosts: templates in turn, named role + number (web1, web2, db1, ...). */
export function demoHosts(n: number): DemoHost[] {
  const count = new Map<string, number>()
  return Array.from({ length: n }, (_, i) => {
    const template = i % TEMPLATES.length
    const t = TEMPLATES[template] as HostTemplate
    const k = (count.get(t.role) ?? 0) + 1
    count.set(t.role, k)
    return { ...t, name: `${t.role}${k}`, template }
  })
}

/** Every label the hosts carry and the policy names, as `key=value`. */
export function demoLabels(hosts: readonly DemoHost[]): string[] {
  const named = [
    ...hosts.flatMap((h) => [`role=${h.role}`, `app=${h.app}`, `env=${h.env}`]),
    ...RULES.flatMap((r) => [r.consumers, r.providers]).filter((a) => a !== ALL),
    ...SCOPES.flatMap((s) => s.scope),
  ]
  return [...new Set(named)]
}

/** An actor: a label `key=value`, or every workload. */
export const ALL = 'all workloads'
export type Actor = string

export interface DemoRule {
  readonly kind: 'allow' | 'deny' | 'override deny'
  readonly consumers: Actor
  readonly providers: Actor
  readonly tcp: readonly number[]
  readonly why: string
}

/** One rule set over the whole estate: allow, deny and override-deny rules. */
export const RULES: readonly DemoRule[] = [
  {
    kind: 'allow',
    consumers: 'role=web',
    providers: 'role=db',
    tcp: [5432],
    why: 'web reaches its database',
  },
  {
    kind: 'allow',
    consumers: ALL,
    providers: 'role=web',
    tcp: [80, 443],
    why: 'everyone reaches the web servers',
  },
  {
    kind: 'allow',
    consumers: 'role=monitor',
    providers: ALL,
    tcp: [9100],
    why: 'monitoring scrapes every host',
  },
  {
    kind: 'allow',
    consumers: 'role=web',
    providers: 'role=api',
    tcp: [8443],
    why: 'web calls the API',
  },
  { kind: 'deny', consumers: ALL, providers: 'role=db', tcp: [3306], why: 'no MySQL anywhere' },
  {
    kind: 'override deny',
    consumers: ALL,
    providers: ALL,
    tcp: [23],
    why: 'telnet is never allowed',
  },
]

export interface DemoScope {
  /** Labels `key=value`; empty: every workload. */
  readonly scope: readonly string[]
  readonly primary: boolean
  readonly workloadMode?: 'illuminated'
  readonly why: string
}

/** The firewall coexistence settings: primary, non-primary and an illuminated rollout. */
export const SCOPES: readonly DemoScope[] = [
  { scope: ['env=staging'], primary: true, why: 'staging: ours first, Docker after' },
  { scope: ['app=crm'], primary: false, why: 'crm: the existing firewalls stay in charge' },
  {
    scope: [],
    primary: false,
    workloadMode: 'illuminated',
    why: 'rollout: hosts only watching stay behind their firewall',
  },
]

export interface DemoFlow {
  readonly from: string
  readonly to: string
  readonly port: number
  /** Whether the connection opens. */
  readonly open: boolean
  readonly why: string
}

/** Connections between templates (by index): each goes to every host made from `to`. */
const FLOWS: readonly { from: number; to: number; port: number; open: boolean; why: string }[] = [
  {
    from: 0,
    to: 2,
    port: 5432,
    open: true,
    why: 'allowed (web to db); ufw accepts it on the db host before us',
  },
  {
    from: 5,
    to: 0,
    port: 80,
    open: true,
    why: 'allowed (everyone to web); firewalld allows http too',
  },
  {
    from: 1,
    to: 0,
    port: 8080,
    open: false,
    why: 'blocked: no rule allows it and web1 enforces fully',
  },
  { from: 1, to: 2, port: 3306, open: false, why: 'blocked by a deny rule' },
  {
    from: 1,
    to: 4,
    port: 6379,
    open: true,
    why: 'potentially blocked: no rule, but the db host only watches',
  },
  {
    from: 4,
    to: 1,
    port: 8080,
    open: true,
    why: 'potentially blocked: no rule, selective enforces deny rules only',
  },
  { from: 4, to: 3, port: 23, open: false, why: 'blocked by an override-deny rule' },
  {
    from: 1,
    to: 2,
    port: 9100,
    open: true,
    why: 'our policy would block it, but ufw accepts it before us: never seen',
  },
  {
    from: 4,
    to: 3,
    port: 8080,
    open: true,
    why: 'accepted by the hand-written rule above ours: never seen',
  },
  { from: 0, to: 3, port: 8443, open: true, why: 'allowed (web to api)' },
  { from: 5, to: 2, port: 9100, open: true, why: 'allowed (monitoring); ufw accepts it too' },
]

/** The connections for these hosts: from the first host of each source template. */
export function demoFlows(hosts: readonly DemoHost[]): DemoFlow[] {
  return FLOWS.flatMap((f) => {
    const from = hosts.find((h) => h.template === f.from)
    if (!from) return []
    return hosts
      .filter((h) => h.template === f.to)
      .map((to) => ({ from: from.name, to: to.name, port: f.port, open: f.open, why: f.why }))
  })
}
