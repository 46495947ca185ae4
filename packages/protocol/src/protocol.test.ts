import type { Checked } from '@palisade/model'
import { hostPolicyFromLocalFile } from '@palisade/model'
import { describe, expect, it } from 'vitest'
import {
  checkActivateReply,
  checkActivateRequest,
  checkEventsBatch,
  checkFlowsBatch,
  checkPolicyReply,
  checkStatusReply,
  checkStatusReport,
  checkUnpairReply,
  errorReplyOf,
} from './index.js'
import type { StatusReport } from './messages.js'
import {
  activateRoute,
  agentDownloadRoute,
  AGENT_PARAM,
  eventsRoute,
  flowsRoute,
  goodbyeRoute,
  policyPollPath,
  policyRoute,
  setsRoute,
  statusRoute,
} from './routes.js'

const pathsOf = (r: Checked<unknown>) => (r.ok ? [] : r.issues.map((i) => i.path))
const POLICY = JSON.parse(
  JSON.stringify(
    hostPolicyFromLocalFile({
      version: 3,
      rules: [
        {
          action: 'allow',
          direction: 'inbound',
          peers: ['198.18.0.0/24'],
          services: [{ proto: 6, port: 22 }],
        },
      ],
    }),
  ),
) as Record<string, unknown>

describe('agent channel routes', () => {
  it('puts every route under /agent/v1, naming the agent', () => {
    expect([
      activateRoute(),
      policyRoute('a1'),
      setsRoute('a1'),
      statusRoute('a1'),
      eventsRoute('a1'),
      flowsRoute('a1'),
      goodbyeRoute('a1'),
    ]).toEqual([
      '/agent/v1/activate',
      '/agent/v1/agents/a1/policy',
      '/agent/v1/agents/a1/address_sets',
      '/agent/v1/agents/a1/status',
      '/agent/v1/agents/a1/events',
      '/agent/v1/agents/a1/flows',
      '/agent/v1/agents/a1/goodbye',
    ])
    expect(statusRoute(AGENT_PARAM)).toBe('/agent/v1/agents/:agent/status')
    expect(policyPollPath('a1', 'ab&c')).toBe(
      '/agent/v1/agents/a1/policy?known=ab%26c&wait=55&sets=ref',
    )
    expect(policyPollPath('a1', undefined, 0)).toBe(
      '/agent/v1/agents/a1/policy?known=&wait=0&sets=ref',
    )
  })
})

describe('what the server sends, as the agent checks it', () => {
  const reply = {
    agent_id: '0b0e3c1a-8a51-4f0e-9a7e-2f4b1c9d0e11',
    workload_href: '/orgs/1/workloads/0b0e',
    token: '0b0e3c1a-8a51-4f0e-9a7e-2f4b1c9d0e11.9f86d081884c7d65',
    agent_endpoint: { address: '198.18.0.1', port: 8443 },
  }

  it('takes an activation reply whole, and refuses ids and tokens that could not be sent on', () => {
    expect(checkActivateReply(reply)).toEqual({ ok: true, value: reply })
    expect(pathsOf(checkActivateReply({ ...reply, agent_id: '../../api/v2' }))).toEqual([
      '$.agent_id',
    ])
    expect(pathsOf(checkActivateReply({ ...reply, token: 'a b\r\nX-Evil: 1' }))).toEqual([
      '$.token',
    ])
    expect(pathsOf(checkActivateReply({ ...reply, agent_endpoint: { address: 'x' } }))).toEqual([
      '$.agent_endpoint.port',
    ])
    expect(pathsOf(checkActivateReply({ ...reply, extra: true }))).toEqual(['$.extra'])
    expect(pathsOf(checkActivateReply('ok'))).toEqual(['$'])
  })

  it('takes a policy reply only with a hash and a policy the host-policy schema accepts', () => {
    const ok = checkPolicyReply({ hash: '0123456789abcdef', policy: POLICY })
    expect(ok).toEqual({ ok: true, value: { hash: '0123456789abcdef', policy: POLICY } })
    const rules = POLICY.rules as Record<string, unknown>[]
    const hostile = {
      ...POLICY,
      rules: [{ ...rules[0], peers: { v4: ['198.18.0.0/24; flush ruleset'], v6: [] } }],
    }
    expect(pathsOf(checkPolicyReply({ hash: 'ab', policy: hostile }))).toEqual([
      '$.policy.rules[0].peers.v4[0]',
    ])
    expect(pathsOf(checkPolicyReply({ hash: 'ab', policy: { ...POLICY, version: '3' } }))).toEqual([
      '$.policy.version',
    ])
    expect(pathsOf(checkPolicyReply({ hash: '../x', policy: POLICY }))).toEqual(['$.hash'])
    expect(pathsOf(checkPolicyReply({ policy: POLICY }))).toEqual(['$.hash'])
    expect(pathsOf(checkPolicyReply({ hash: 'ab' }))).toEqual(['$.policy'])
  })

  it('takes an unpair reply only with a firewall restore it knows', () => {
    for (const mode of ['default', 'saved', 'open', 'closed'])
      expect(checkUnpairReply({ unpair: { firewall_restore: mode } }).ok).toBe(true)
    expect(pathsOf(checkUnpairReply({ unpair: { firewall_restore: 'wipe' } }))).toEqual([
      '$.unpair.firewall_restore',
    ])
    expect(pathsOf(checkUnpairReply({ unpair: {} }))).toEqual(['$.unpair.firewall_restore'])
    expect(pathsOf(checkUnpairReply({}))).toEqual(['$.unpair'])
  })

  it('reads an error reply only in the API shape', () => {
    expect(errorReplyOf([{ token: 't', message: 'm' }])).toEqual([{ token: 't', message: 'm' }])
    expect(errorReplyOf([{ token: 't' }])).toBeUndefined()
    expect(errorReplyOf('oops')).toBeUndefined()
  })
})

describe('upgrade orders, as the agent checks them', () => {
  const order = { release: '0.2.0', sha256: 'c0'.repeat(32), size: 90_000_000 }

  it('takes an order whole, or no order', () => {
    expect(checkStatusReply({ upgrade: order })).toEqual({ ok: true, value: { upgrade: order } })
    expect(checkStatusReply({})).toEqual({ ok: true, value: {} })
    expect(agentDownloadRoute('arm64')).toBe('/agent/palisade-agent-linux-arm64')
  })

  it('refuses an order with anything unknown, unbounded or malformed', () => {
    expect(
      pathsOf(
        checkStatusReply({
          upgrade: { release: '0.2.0; rm -rf /', sha256: 'C0'.repeat(32), size: 0, url: 'x' },
        }),
      ),
    ).toEqual(['$.upgrade.url', '$.upgrade.release', '$.upgrade.sha256', '$.upgrade.size'])
    expect(pathsOf(checkStatusReply({ upgrade: { ...order, size: 2 ** 40 } }))).toEqual([
      '$.upgrade.size',
    ])
    expect(pathsOf(checkStatusReply({ upgrade: order, reboot: true }))).toEqual(['$.reboot'])
    expect(pathsOf(checkStatusReply({ upgrade: 'now' }))).toEqual(['$.upgrade'])
    expect(pathsOf(checkStatusReply([]))).toEqual(['$'])
  })
})

describe('what an agent sends, as the server checks it', () => {
  it('accepts a full status report as the agent builds it', () => {
    const report: StatusReport = {
      applied: { version: 3, hash: '0123456789abcdef', mode: 'exclusive' },
      health: {
        health: 'healthy',
        reason: null,
        tampering: { condition: 'none', repairs: 0 },
        suspended: false,
        flows: {
          level: 'flow_off',
          readers: { log: 'stopped', confirmations: 'stopped' },
          packets: 0,
          summaries: 0,
          dropped: 0,
        },
        failsafe: { servers: [], managementPorts: [{ proto: 6, port: 22 }], dhcpClient: true },
      },
      survey: { firewalls: [], foreignTables: [], recommendations: [] },
      interfaces: [{ name: 'eth0', address: '198.18.0.5' }],
      ruleset: { tables: [], ipsets: [] },
      backend: 'nftables',
      build: { version: '0.2.0', arch: 'x64', sha256: 'ab'.repeat(32) },
    }
    expect(checkStatusReport(JSON.parse(JSON.stringify(report)))).toEqual({
      ok: true,
      value: report,
    })
    expect(checkStatusReport({})).toEqual({ ok: true, value: {} })
  })

  it('refuses a malformed status report part by part', () => {
    expect(
      pathsOf(
        checkStatusReport({
          applied: { version: -1 },
          backend: 'pf',
          ruleset: { tables: {} },
          interfaces: [{ name: 'eth0', address: 'not an address' }],
          colour: 'red',
        }),
      ),
    ).toEqual([
      '$.colour',
      '$.applied.version',
      '$.applied.hash',
      '$.ruleset',
      '$.backend',
      '$.interfaces[0].address',
    ])
    expect(
      pathsOf(checkStatusReport({ build: { version: '1 0', arch: 'mips', sha256: 'AB', x: 1 } })),
    ).toEqual(['$.build.x', '$.build.version', '$.build.arch', '$.build.sha256'])
    expect(
      checkStatusReport({ build: { version: '0.1.0', arch: 'arm64', sha256: null } }),
      'an agent run from a checkout has no executable of its own to hash',
    ).toEqual({ ok: true, value: { build: { version: '0.1.0', arch: 'arm64', sha256: null } } })
  })

  it('checks an activation request and fills in its defaults', () => {
    expect(checkActivateRequest({ activation_code: 'c', hostname: 'h' })).toEqual({
      ok: true,
      value: { activation_code: 'c', hostname: 'h', os_platform: 'linux', interfaces: [] },
    })
    expect(pathsOf(checkActivateRequest({ hostname: 'h', os_platform: 'beos' }))).toEqual([
      '$.activation_code',
      '$.os_platform',
    ])
  })

  it('parses every reported address for real and keeps it in one spelling', () => {
    const activate = (address: string) =>
      checkActivateRequest({
        activation_code: 'c',
        hostname: 'h',
        interfaces: [{ name: 'eth0', address }],
      })
    for (const bad of ['1.2.3', '1.2.3.4.5', '::g', '198.18.0.1/32', '198.18.0.1\n', 'ff::ff::1'])
      expect(pathsOf(activate(bad)), bad).toEqual(['$.interfaces[0].address'])
    expect(activate('FD00:0:0::0011')).toMatchObject({
      ok: true,
      value: { interfaces: [{ name: 'eth0', address: 'fd00::11' }] },
    })
    expect(
      pathsOf(checkStatusReport({ interfaces: [{ name: 'eth0', address: '10.0.0.256' }] })),
    ).toEqual(['$.interfaces[0].address'])
  })

  it('checks events and flow summaries in batches of at most 1,000', () => {
    const event = {
      uuid: 'u1',
      event_type: 'agent.tampering',
      severity: 'warning',
      timestamp: '2025-01-01T00:00:00Z',
      details: { repaired: true },
    }
    expect(checkEventsBatch([event])).toEqual({ ok: true, value: [event] })
    expect(checkEventsBatch([{ ...event, details: undefined }])).toEqual({
      ok: true,
      value: [{ ...event, details: {} }],
    })
    expect(pathsOf(checkEventsBatch([{ ...event, event_type: 'agent.reboot' }]))).toEqual([
      '$[0].event_type',
    ])
    expect(pathsOf(checkEventsBatch(new Array(1001).fill(event)))).toEqual(['$'])
    const flow = {
      uuid: 'f1',
      direction: 'inbound',
      src_ip: '198.18.0.1',
      dst_ip: '198.18.0.2',
      port: 22,
      proto: 6,
      policy_decision: 'allowed',
      rule_href: null,
      num_connections: 2,
      first_seen: '2025-01-01T00:00:00Z',
      last_seen: '2025-01-01T00:00:10Z',
      dropped_downstream: false,
    }
    expect(checkFlowsBatch([flow])).toEqual({ ok: true, value: [flow] })
    expect(
      pathsOf(checkFlowsBatch([{ ...flow, src_ip: '198.18.0.0/24', last_seen: '2024-01-01' }])),
    ).toEqual(['$[0].src_ip', '$[0].last_seen'])
  })
})
