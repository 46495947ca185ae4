/**
 * Turning flows on: the connections made from the moment a policy at `flow_summary` is applied
 * are all counted, on every backend. The rules log (or count) as soon as they are in the
 * kernel, so the flow reader must already be listening then, not start after the commit.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Backend } from '@palisade/firewall'
import { BACKENDS } from '@palisade/firewall'
import type { LabHost } from '@palisade/lab'
import { Lab, LabAgent, LabPeer, resetFirewall, waitFor } from '@palisade/lab'
import type { FlowSummaryUpload } from '@palisade/model'
import { runChecked } from '@palisade/agent'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const PORT = 8080

const policy = (version: number, visibility: string, client: string) => ({
  version,
  enforcement_mode: 'full',
  visibility_level: visibility,
  rules: [
    {
      action: 'allow',
      direction: 'inbound',
      peers: [client],
      services: [{ proto: 6, port: PORT }],
    },
  ],
})

async function counted(agent: LabAgent): Promise<number> {
  const text = await readFile(join(agent.stateDir, 'flows.jsonl'), 'utf8').catch(() => '')
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as FlowSummaryUpload)
    .filter((s) => s.port === PORT && s.policy_decision === 'allowed')
    .reduce((n, s) => n + s.num_connections, 0)
}

describe('turning flows on through a real agent', () => {
  let lab: Lab
  let server: LabHost
  let client: LabHost
  let listener: LabPeer
  let peer: LabPeer

  beforeAll(async () => {
    lab = await Lab.create(['srv', 'cli'])
    server = lab.host('srv')
    client = lab.host('cli')
    listener = LabPeer.start(server.ns)
    await listener.listen([PORT], [])
    peer = LabPeer.start(client.ns)
  }, 60_000)

  afterAll(async () => {
    await peer?.stop()
    await listener?.stop()
    await lab?.destroy()
  })

  it.each(BACKENDS as readonly Backend[])(
    '%s: every connection made once the policy applies is counted',
    async (backend) => {
      await resetFirewall(server.run)
      const agent = await LabAgent.start(
        server.ns,
        backend,
        policy(1, 'flow_off', client.ip4),
        {},
        { flows: { intervalMs: 500 } },
      )
      try {
        await agent.writePolicy(policy(2, 'flow_summary', client.ip4))
        await agent.waitApplied(2)
        const r = await peer.connectionRate(server.ip4, PORT, 1, 4)
        expect(r.failures).toBe(0)
        expect(r.connections).toBeGreaterThan(100)
        await waitFor(
          'the connections to close',
          async () =>
            (
              await runChecked(server.run, 'ss', [
                '-Htan',
                'state',
                'connected',
                `sport = :${PORT}`,
              ])
            ).trim() === ''
              ? true
              : undefined,
          10_000,
          50,
        )
        await agent.stop()
        expect(await counted(agent)).toBe(r.connections)
      } finally {
        await agent.cleanup()
        await resetFirewall(server.run)
      }
    },
    60_000,
  )
})
