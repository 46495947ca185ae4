/**
 * Commit-confirm: a policy from the server counts only once the agent reached the server again
 * after applying it. A fake server in this test stores every report naming the first policy
 * and none naming the second, so the order is the test's, not the agent's timers': the first
 * is confirmed, the second never can be, and the agent must roll back to exactly the first
 * by itself, and say so.
 */
import type { KnownGood } from '@palisade/agent'
import { failsafeOf, loadConfig, readJson, readOwn, statePaths } from '@palisade/agent'
import { compile, diff, planApply } from '@palisade/firewall'
import type { LabHost } from '@palisade/lab'
import { FakePolicyServer, Lab, LabAgent, LabPeer, waitFor } from '@palisade/lab'
import { hostPolicyFromLocalFile } from '@palisade/model'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest'

const AGENT = 'a-confirm'
const PORT = 18080
const CONFIRM_MS = 5000
/** The server's names for the two policies (hashes: hexadecimal). */
const H1 = 'c1'
const H2 = 'c2'

/** Version `version`: TCP `ports` allowed from the lab, everything else blocked. */
const policy = (version: number, ports: number[]) =>
  hostPolicyFromLocalFile({
    version,
    enforcement_mode: 'full',
    visibility_level: 'flow_off',
    rules: [
      {
        action: 'allow',
        direction: 'inbound',
        peers: ['198.18.0.0/24'],
        services: ports.map((port) => ({ proto: 6, port })),
      },
    ],
  })
const GOOD = policy(1, [8080])
const CUT_OFF = policy(2, [8080, 9090])

/**
 * Our tables as the kernel holds them, read back and parsed: every set with its elements,
 * every chain with its rules in order (counters left out; chains and sets by name, since a
 * chain made again lists in another place).
 */
const ownRuleset = async (h: LabHost) =>
  (await readOwn(h.run, 'nftables')).tables.map((t) => ({
    table: `${t.family} ${t.name}`,
    sets: [...t.sets].sort((a, b) => a.name.localeCompare(b.name)),
    chains: [...t.chains]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((c) => ({
        name: c.name,
        base: c.base,
        rules: c.rules.map((r) => ({
          matches: r.matches,
          verdict: r.verdict,
          log: r.log,
          comment: r.comment,
        })),
      })),
  }))

describe('agent commit-confirm (real kernel)', () => {
  let lab: Lab
  let fake: FakePolicyServer
  let socket: string
  let srvPeer: LabPeer
  let h1Peer: LabPeer
  let agent: LabAgent | undefined

  beforeAll(async () => {
    lab = await Lab.create(['srv', 'h1'])
    fake = new FakePolicyServer(AGENT)
    socket = join(tmpdir(), `palisade-confirm-${process.pid}.sock`)
    await rm(socket, { force: true })
    await fake.listen(socket)
    srvPeer = LabPeer.start(lab.host('srv').ns)
    await srvPeer.expose(lab.host('srv').ip4, PORT, socket)
    h1Peer = LabPeer.start(lab.host('h1').ns)
    await h1Peer.listen([8080, 9090], [])
  })
  afterAll(async () => {
    await agent?.cleanup()
    await srvPeer?.stop()
    await h1Peer?.stop()
    await fake?.close()
    await rm(socket, { force: true })
    await lab?.destroy()
  })

  it('rolls back to exactly the last confirmed policy when the server never confirms the new one', async () => {
    const h1 = lab.host('h1')
    const srv = lab.host('srv')
    // Reports naming version 2 as applied are never stored: nothing can confirm it.
    fake.statusReply = (r) => (r.applied?.hash === H2 ? 503 : 204)
    agent = await LabAgent.attach(
      h1.ns,
      'nftables',
      { url: `http://${srv.ip4}:${PORT}`, agentId: AGENT, token: 'token' },
      { heartbeatMs: 1000, confirmMs: CONFIRM_MS },
    )
    const a = agent
    onTestFailed(() => console.log(`agent log:\n${a.log.slice(-3000)}`))
    const paths = statePaths(a.stateDir)
    /** The kernel holds exactly what the agent renders for `p` (its own failsafe and options). */
    const holds = async (p: typeof GOOD) => {
      const config = await loadConfig(paths)
      const desired = compile(p, {
        backend: 'nftables',
        failsafe: failsafeOf(config, [{ address: srv.ip4, port: PORT }]),
        flowLogGroup: config.flows.group,
      })
      return planApply(desired, diff(desired, await readOwn(h1.run, 'nftables'))).kind === 'none'
    }
    const probe = () =>
      srvPeer.probe([8080, 9090].map((port) => ({ proto: 'tcp' as const, host: h1.ip4, port })))

    fake.policy(H1, JSON.stringify(GOOD))
    await a.waitApplied(1, 20_000)
    // A report naming version 1 was stored: the agent keeps it as its known-good policy.
    await waitFor('version 1 to be confirmed and saved', async () =>
      (await readJson<KnownGood>(paths.policy))?.hash === H1 ? true : undefined,
    )
    expect(await holds(GOOD), 'the kernel holds version 1').toBe(true)
    const good = await ownRuleset(h1)
    expect(await probe()).toEqual(['open', 'timeout'])

    const servedBefore = fake.served
    fake.policy(H2, JSON.stringify(CUT_OFF))
    await waitFor('the kernel to hold version 2', async () =>
      fake.served > servedBefore && (await holds(CUT_OFF)) ? true : undefined,
    )
    expect(await ownRuleset(h1), 'version 2 changed the kernel').not.toEqual(good)
    // The agent tried to reach the server with version 2 applied, and was not stored.
    await waitFor('a report naming version 2', () =>
      Promise.resolve(fake.reportAfter(servedBefore + 1, (r) => r.applied?.hash === H2)),
    )

    const rolledBack = await waitFor(
      'the rollback to version 1',
      async () => {
        const s = await a.status()
        return s?.policy?.source.includes('rolled back') &&
          s.enforcement.health === 'healthy' &&
          s.enforcement.applied?.version === 1
          ? s
          : undefined
      },
      CONFIRM_MS + 10_000,
    )
    expect(rolledBack.policy?.version).toBe(1)
    expect(await ownRuleset(h1), 'the kernel holds the confirmed ruleset again, exactly').toEqual(
      good,
    )
    expect(await holds(GOOD), 'the kernel holds version 1 as rendered').toBe(true)
    expect(await probe(), '9090, which version 2 allowed, is blocked again').toEqual([
      'open',
      'timeout',
    ])
    const event = await waitFor('the rollback event to reach the server', () =>
      Promise.resolve(fake.events.find((e) => e.event_type === 'agent.firewall_apply_failed')),
    )
    expect(event.details).toMatchObject({
      rolled_back: true,
      reason: expect.stringMatching(
        new RegExp(`within ${CONFIRM_MS} ms after applying policy version 2`),
      ) as string,
    })
    // Once back on version 1 the agent reaches the server again, and says so.
    const refused = fake.reports.findIndex((r) => r.report.applied?.hash === H2)
    await waitFor('a report naming version 1 after the rollback', () =>
      Promise.resolve(
        fake.reports.slice(refused).find((r) => r.report.applied?.hash === H1) ? true : undefined,
      ),
    )
  }, 60_000)
})
