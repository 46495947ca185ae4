/**
 * Commit-confirm: a policy from the server counts only once the agent reached the server again
 * after applying it. Here the server dies right after the agent applied a new version: the agent
 * must roll back to the last confirmed policy by itself, and say so.
 */
import { readOwn } from '@palisade/agent'
import { findTable, NFT_TABLE } from '@palisade/firewall'
import { Lab, LabAgent, LabServer, waitFor } from '@palisade/lab'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

describe('agent commit-confirm (real kernel)', () => {
  let lab: Lab
  let server: LabServer
  let agent: LabAgent

  beforeAll(async () => {
    lab = await Lab.create(['srv', 'h1'])
    server = await LabServer.start(lab.host('srv').ns, lab.host('srv').ip4)
  })
  afterAll(async () => {
    await agent?.cleanup()
    await server?.cleanup()
    await lab?.destroy()
  })

  it('rolls back a policy when the server cannot be reached after applying it', async () => {
    const api = async (method: string, path: string, body?: unknown) =>
      (await server.api(method, path, body)).body as Record<string, unknown>
    const label = String(
      (await api('POST', '/api/v2/orgs/1/labels', { key: 'role', value: 'cc' })).href,
    )
    const profile = await api('POST', '/api/v2/orgs/1/pairing_profiles', {
      name: 'cc',
      enforcement_mode: 'full',
      labels: [{ href: label }],
    })
    const code = String(
      (await api('POST', `/api/v2${String(profile.href)}/pairing_key`, {})).activation_code,
    )
    agent = await LabAgent.pair(lab.host('h1').ns, 'nftables', server, code, {
      heartbeatMs: 1000,
      confirmMs: 3000,
    })
    const first = await agent.waitHealthy()
    // the first policy is confirmed once the agent reaches the server
    await waitFor('the first policy to be confirmed', async () =>
      (await agent.status())?.server?.connected ? true : undefined,
    )
    await new Promise((r) => setTimeout(r, 1500))
    const rulesBefore = findTable(
      await readOwn(lab.host('h1').run, 'nftables'),
      'nft',
      'inet',
      NFT_TABLE,
    )?.chains.find((c) => c.name === 'input')?.rules.length
    const rs = await api('POST', '/api/v2/orgs/1/sec_policy/draft/rule_sets', {
      name: 'cc',
      scopes: [],
    })
    await api('POST', `/api/v2${String(rs.href)}/sec_rules`, {
      providers: [{ label: { href: label } }],
      consumers: [{ actors: 'ams' }],
      ingress_services: [{ port: 8080, proto: 6 }],
    })
    await api('POST', '/api/v2/orgs/1/sec_policy', {})
    // the moment the agent has the new policy in the kernel, the server goes away
    await waitFor(
      'the new policy to be applied',
      async () =>
        (await agent.status())?.enforcement.applied?.at !== first.enforcement.applied?.at
          ? true
          : undefined,
      10_000,
      2,
    )
    await server.stop('SIGKILL')
    const rolledBack = await waitFor(
      'the rollback',
      async () => {
        const s = await agent.status()
        return s?.policy?.source.includes('rolled back') ? s : undefined
      },
      15_000,
    )
    expect(rolledBack.enforcement.health).toBe('healthy')
    const after = findTable(
      await readOwn(lab.host('h1').run, 'nftables'),
      'nft',
      'inet',
      NFT_TABLE,
    )?.chains.find((c) => c.name === 'input')?.rules.length
    expect(after, 'the kernel holds the confirmed policy again').toBe(rulesBefore)
    const e = (await agent.events()).find((x) => x.event_type === 'agent.firewall_apply_failed')
    expect(e?.details).toMatchObject({
      rolled_back: true,
      reason: expect.stringMatching(/could not reach the policy server within 3000 ms/) as string,
    })
  })
})
