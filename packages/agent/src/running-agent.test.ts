/**
 * The running agent, wired as in production but on the in-memory kernel and the fake clock:
 * what a policy that cannot be taken does to the kernel, the health and the events.
 */
import type { Ruleset } from '@palisade/firewall'
import { EMPTY_RULESET } from '@palisade/firewall'
import { hostPolicyFromLocalFile } from '@palisade/model'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { DEFAULT_CONFIG } from './agent-config.js'
import type { AgentStatus } from './agent-status.js'
import { FakeClock } from './clock-fake.fixture.js'
import { FakeDataplane } from './dataplane-fake.fixture.js'
import type { AgentEvent } from './events.js'
import { ToolMissingError } from './exec.js'
import type { RunningAgentOptions } from './running-agent-options.js'
import { RunningAgent } from './running-agent.js'
import type { ResolvedAddress } from './server-addresses.js'
import { RESOLVE_BOUNDS } from './server-addresses.js'
import { ensureStateDir, LatestJsonWriter } from './state-dir.js'
import { surveyRuleset } from './survey.js'

const policy = (version: number, peer = '198.18.0.53') => ({
  version,
  enforcement_mode: 'full',
  visibility_level: 'flow_off',
  rules: [
    { action: 'allow', direction: 'inbound', peers: [peer], services: [{ proto: 6, port: 80 }] },
  ],
})

const dirs: string[] = []
afterEach(async () => {
  process.removeAllListeners('SIGHUP')
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
})

async function setup(
  o: {
    paired?: { resolve: (name: string) => Promise<readonly ResolvedAddress[]> }
    /** What the host held before the agent started (the survey cannot read it again here). */
    ruleset?: Ruleset
    countLabelName?: string
  } = {},
) {
  const dir = await mkdtemp(join(tmpdir(), 'palisade-agent-'))
  dirs.push(dir)
  const paths = await ensureStateDir(join(dir, 'state'))
  const clock = new FakeClock()
  const dp = new FakeDataplane('nftables', clock)
  const logs: Record<string, unknown>[] = []
  const statusFile = new LatestJsonWriter(paths.status, (e) => {
    throw e
  })
  const policyFile = join(dir, 'policy.json')
  const options: RunningAgentOptions = {
    stateDir: paths.dir,
    // No firewall tool is installed on this fake host: the survey finds nothing.
    run: (cmd) => Promise.reject(new ToolMissingError(cmd)),
    ...(!o.paired && { policyFile }),
    log: (l) => logs.push(l),
    version: 'test',
    clock,
    paths,
    config: {
      ...DEFAULT_CONFIG,
      ...(o.paired && {
        server: {
          url: 'https://policy.example.test:8443',
          caCertFile: join(dir, 'missing-ca.pem'),
          agentId: 'a1',
        },
      }),
    },
    os: { id: 'debian', versionId: '12', prettyName: 'Debian 12' },
    view: {
      choice: { backend: 'nftables', reason: 'test', warnings: [] },
      survey: surveyRuleset(o.ruleset ?? EMPTY_RULESET, []),
      ruleset: o.ruleset ?? EMPTY_RULESET,
      ...(o.countLabelName !== undefined && { countLabelName: o.countLabelName }),
      interfaces: [],
    },
    statusFile,
    token: o.paired ? 'token' : undefined,
    release: () => Promise.resolve(),
    dataplane: dp,
    ...(o.paired && { resolve: o.paired.resolve }),
  }
  const agent = new RunningAgent(options)
  const events = () =>
    logs.filter((l) => l.msg === 'event').map((l) => l as unknown as AgentEvent & { msg: string })
  const status = async () => {
    await statusFile.flush()
    return JSON.parse(await readFile(paths.status, 'utf8')) as AgentStatus
  }
  /** Lets the agent do what is due, once the policy file a SIGHUP asked for is read. */
  const settle = async (ms = 0) => {
    await agent.reloaded
    for (let i = 0; i < 5; i++) {
      await clock.advance(ms / 5)
      await agent.enforcer.settled()
      await new Promise((r) => setImmediate(r))
    }
  }
  return { agent, dp, clock, logs, events, status, settle, policyFile, paths }
}

describe('running agent: a policy it cannot take', () => {
  it('keeps the last good ruleset for a refused policy file, unhealthy with one event, however often it is read', async () => {
    const t = await setup()
    await writeFile(t.policyFile, JSON.stringify(policy(1)))
    await t.agent.start(undefined, () => undefined)
    await t.settle()
    expect(t.agent.enforcer.status).toMatchObject({ health: 'healthy', applied: { version: 1 } })
    const good = t.dp.own
    expect(JSON.stringify(good)).toContain('198.18.0.53')

    await writeFile(t.policyFile, JSON.stringify(policy(2, '10.9.9.9/32 } ; }\ntable inet x {')))
    for (let i = 0; i < 4; i++) {
      process.emit('SIGHUP')
      await t.settle(1000)
    }
    expect(t.dp.own).toEqual(good)
    const refused = t.events().filter((e) => e.event_type === 'agent.health')
    expect(refused).toHaveLength(1)
    expect(refused[0]?.details).toMatchObject({ policy_refused: 'offered' })
    const s = await t.status()
    expect(s.enforcement.health).toBe('unhealthy')
    expect(s.enforcement.reason).toMatch(/^policy file not applied, the previous policy stays: /)
    expect(s.policy).toMatchObject({ version: 1 })

    // a good policy again: taken, healthy
    await writeFile(t.policyFile, JSON.stringify(policy(3)))
    process.emit('SIGHUP')
    await t.settle()
    expect(t.agent.enforcer.status).toMatchObject({ health: 'healthy', applied: { version: 3 } })
    expect((await t.status()).enforcement).toMatchObject({ health: 'healthy' })
    expect((await t.status()).enforcement.reason).toBeUndefined()
    await t.agent.stop()
  })

  it('keeps the last good ruleset while a policy fails to apply, with one event for every retry, and never counts it applied', async () => {
    const t = await setup()
    await writeFile(t.policyFile, JSON.stringify(policy(1)))
    await t.agent.start(undefined, () => undefined)
    await t.settle()
    const good = t.dp.own
    for (let i = 0; i < 6; i++) t.dp.fail('apply', 'nft -f - failed (exit code 1): syntax refused')
    await writeFile(t.policyFile, JSON.stringify(policy(2, '198.18.0.54')))
    process.emit('SIGHUP')
    await t.settle()
    // retried with back-off (100 ms doubling): six failures take a few seconds
    await t.settle(3000)
    expect(t.dp.calls.applies).toBeGreaterThanOrEqual(6)
    const failed = t.events().filter((e) => e.event_type === 'agent.firewall_apply_failed')
    expect(failed).toHaveLength(1)
    expect(t.agent.enforcer.status.applied?.version).toBe(1)
    // the known-good copy is still version 1: nothing counts until the kernel holds it
    expect(JSON.parse(await readFile(t.paths.policy, 'utf8'))).toMatchObject({
      policy: { version: 1 },
    })
    // after the failures the next retry applies it
    await t.settle(30_000)
    expect(t.agent.enforcer.status).toMatchObject({ health: 'healthy', applied: { version: 2 } })
    expect(JSON.stringify(t.dp.own)).toContain('198.18.0.54')
    expect(good).not.toEqual(t.dp.own)
    await t.agent.stop()
  })

  it('with a server name that does not resolve: compiles nothing, leaves the kernel, one event; then allows every address it resolves to', async () => {
    let answer: readonly ResolvedAddress[] | Error = new Error(
      'queryA ENOTFOUND policy.example.test',
    )
    const t = await setup({
      paired: {
        resolve: () => (answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer)),
      },
    })
    const before = t.dp.kernel
    const known = {
      policy: hostPolicyFromLocalFile(policy(1)),
      hash: 'h1',
      appliedMode: 'exclusive',
    }
    await t.agent.start(known, () => undefined)
    await t.settle(3 * RESOLVE_BOUNDS.minMs)
    expect(t.dp.kernel).toBe(before)
    expect(t.dp.calls.applies).toBe(0)
    const health = t.events().filter((e) => e.event_type === 'agent.health')
    expect(health).toHaveLength(1)
    expect(String(health[0]?.details.reason)).toContain(
      "the policy server's name policy.example.test does not resolve",
    )
    expect((await t.status()).enforcement.health).toBe('unhealthy')

    answer = [
      { address: '198.18.0.7', ttl: 30 },
      { address: '2001:db8::7', ttl: 30 },
    ]
    await t.settle(RESOLVE_BOUNDS.minMs)
    expect(t.agent.enforcer.status).toMatchObject({ health: 'healthy', applied: { version: 1 } })
    const rules = JSON.stringify(t.dp.own)
    expect(rules).toContain('198.18.0.7')
    expect(rules).toContain('2001:db8::7')
    expect((await t.status()).enforcement.health).toBe('healthy')

    // the server moves: allowed once the TTL ran out
    answer = [{ address: '198.18.0.8', ttl: 30 }]
    await t.settle(30_000)
    expect(JSON.stringify(t.dp.own)).toContain('198.18.0.8')
    expect(JSON.stringify(t.dp.own)).not.toContain('198.18.0.7')
    await t.agent.stop()
  })
})

describe('running agent: flows counted in the kernel', () => {
  // firewalld's input chain: after ours, dropping by default what no rule of it accepts
  const firewalld: Ruleset = {
    tables: [
      {
        family: 'inet',
        name: 'firewalld',
        source: 'nft',
        sets: [],
        chains: [
          {
            name: 'filter_INPUT',
            base: { type: 'filter', hook: 'input', priority: 10, policy: 'drop' },
            rules: [],
          },
        ],
      },
    ],
    ipsets: [],
  }

  // a rule that marks what it sees as counted: our counting would skip it, the log never sees it
  const marker: Ruleset = {
    tables: [
      {
        family: 'inet',
        name: 'marker',
        source: 'nft',
        sets: [],
        chains: [
          {
            name: 'c',
            base: { type: 'filter', hook: 'input', priority: -160, policy: 'accept' },
            rules: [
              {
                matches: [],
                verdict: null,
                text: '[{"mangle": {"key": {"ct": {"key": "label"}}, "value": 127}}]',
              },
            ],
          },
        ],
      },
    ],
    ipsets: [],
  }

  it.each([
    { what: 'nothing foreign', host: EMPTY_RULESET, counts: true },
    { what: 'a foreign rule setting our label', host: marker, counts: false },
    // the survey was read before our table existed: it alone would show no rule after ours
    { what: 'a foreign drop after ours', host: firewalld, counts: false },
    // nft would print the name: our counting rules would never read back as written
    { what: 'our label named in connlabel.conf', host: EMPTY_RULESET, label: 'x', counts: false },
  ])('$what: counts in the kernel from the first apply: $counts', async (c) => {
    const { host, counts } = c
    const t = await setup({
      ruleset: host,
      ...('label' in c && { countLabelName: c.label }),
    })
    await writeFile(
      t.policyFile,
      JSON.stringify({ ...policy(1), visibility_level: 'flow_summary' }),
    )
    await t.agent.start(undefined, () => undefined)
    try {
      await t.settle()
      expect(t.agent.enforcer.status).toMatchObject({ health: 'healthy', applied: { version: 1 } })
      expect(t.dp.calls.applies).toBe(1)
      expect(t.dp.own.tables.some((x) => (x.counters ?? []).length > 0)).toBe(counts)
    } finally {
      // its flow reader is a real process
      await t.agent.stop()
    }
  })
})
