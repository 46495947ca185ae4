/**
 * Compile cost by peer count: host policy from a policy snapshot (N workloads behind one label),
 * then compile and render for each backend; rendered sizes in bytes.
 */
import {
  compile,
  renderIpsetStage,
  renderIptablesRestore,
  renderNftScript,
} from '@palisade/firewall'
import type { PolicySnapshot } from '@palisade/model'
import { computeHostPolicy, DEFAULT_FAILSAFE, DEFAULT_FIREWALL_SETTINGS } from '@palisade/model'
import { peerAddresses } from './peers.js'
import { median, timed } from './stats.js'

const NO_STATE = { hooksFound: [], modeChanged: true, foreignToDelete: [], staleChains: [] }

function snapshot(n: number): PolicySnapshot {
  const p = peerAddresses(n)
  const addrs = [...p.v4, ...p.v6].map((c) => c.split('/')[0] ?? '')
  const web = { href: '/orgs/1/labels/1', key: 'role', value: 'web' }
  const db = { href: '/orgs/1/labels/2', key: 'role', value: 'db' }
  const workload = (name: string, address: string, label: string) => ({
    href: `/orgs/1/workloads/${name}`,
    name,
    agentType: 'server' as const,
    osPlatform: 'linux' as const,
    enforcementMode: 'full' as const,
    labels: [label],
    interfaces: [{ name: 'eth0', address }],
  })
  return {
    version: 1,
    labels: [web, db],
    labelGroups: [],
    workloads: [
      workload('db', '198.19.0.1', db.href),
      ...addrs.map((a, i) => workload(`w${i}`, a, web.href)),
    ],
    services: [],
    ipLists: [],
    ruleSets: [
      {
        href: '/orgs/1/sec_policy/draft/rule_sets/1',
        name: 'rs',
        enabled: true,
        scopes: [],
        denyRules: [],
        rules: [
          {
            href: '/r/1',
            enabled: true,
            providers: [{ kind: 'label', href: db.href }],
            consumers: [{ kind: 'label', href: web.href }],
            services: [{ proto: 6, port: 5432 }],
            unscopedConsumers: false,
          },
        ],
      },
    ],
    firewallSettings: DEFAULT_FIREWALL_SETTINGS,
    virtualServices: [],
    serviceBindings: [],
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {}
  for (const n of [1_000, 10_000, 100_000]) {
    const snap = snapshot(n)
    const reps = n >= 100_000 ? 3 : 7
    const host: number[] = []
    const nft: number[] = []
    const ipt: number[] = []
    let sizes = { nftBytes: 0, iptablesBytes: 0, ipsetBytes: 0 }
    for (let i = 0; i < reps; i++) {
      const h = await timed(() => computeHostPolicy(snap, '/orgs/1/workloads/db'))
      host.push(h.ms)
      const a = await timed(() =>
        renderNftScript(compile(h.value, { backend: 'nftables', failsafe: DEFAULT_FAILSAFE })),
      )
      nft.push(a.ms)
      const b = await timed(() => {
        const d = compile(h.value, { backend: 'iptables-nft', failsafe: DEFAULT_FAILSAFE })
        return [
          renderIpsetStage(d.ipsets, new Set()),
          renderIptablesRestore(d, 'ip', NO_STATE) + renderIptablesRestore(d, 'ip6', NO_STATE),
        ]
      })
      ipt.push(b.ms)
      sizes = {
        nftBytes: a.value.length,
        ipsetBytes: b.value[0]?.length ?? 0,
        iptablesBytes: b.value[1]?.length ?? 0,
      }
    }
    out[`peers${n}`] = {
      hostPolicyMs: +median(host).toFixed(1),
      compileRenderNftMs: +median(nft).toFixed(1),
      compileRenderIptablesMs: +median(ipt).toFixed(1),
      ...sizes,
    }
  }
  return out
}
