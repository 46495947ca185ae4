/**
 * Two policy servers on one PostgreSQL (a private one), sharing one CA through the database, and
 * four real agents in their own namespaces, two on each server. One server is killed (SIGKILL):
 * the kernel keeps every host's ruleset, each of its agents moves to the other server, and a
 * provision through the survivor reaches all four. Prints the failover time and the provision
 * to synced time with one node down (figures, not assertions).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { LabAgent } from '@palisade/lab'
import { Lab, LabAgent as Agent, LabPeer, LabServer, waitFor } from '@palisade/lab'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestPostgres } from '../../packages/server/src/postgres.fixture.js'
import { startTestPostgres } from '../../packages/server/src/postgres.fixture.js'

type Json = Record<string, unknown>
const HOSTS = { h1: 'web', h2: 'db', h3: 'web', h4: 'db' } as const
type Host = keyof typeof HOSTS

describe('two servers on one PostgreSQL: agents fail over when one is killed', () => {
  let pg: TestPostgres
  let lab: Lab
  let dir = ''
  const servers: LabServer[] = []
  const agents = {} as Record<Host, LabAgent>
  const peers = {} as Record<Host, LabPeer>
  const href: Record<string, string> = {}

  const serverIp = (i: 0 | 1) => lab.host(i === 0 ? 's1' : 's2').ip4
  /** The servers this host's agent has a connection open to (its channel), by address. */
  const channelsOf = async (h: Host) => {
    const out = await lab.host(h).run('ss', ['-Htn', 'state', 'established', 'dport', '= :8443'])
    return [
      ...new Set(
        out.stdout
          .split('\n')
          .map((l) =>
            l
              .trim()
              .split(/\s+/)[3]
              ?.replace(/:8443$/, ''),
          )
          .filter((a): a is string => Boolean(a)),
      ),
    ].sort()
  }
  /** Every agent reports version `version` applied and synced, as server `via` says. */
  const allSynced = (via: LabServer, version: unknown, ms = 30_000) =>
    waitFor(
      `all four agents synced on version ${String(version)}`,
      async () => {
        const r = await via.api('GET', '/api/v2/orgs/1/workloads?managed=true')
        const list = r.body as {
          hostname: string
          agent: { status: Json }
        }[]
        return list.length === 4 &&
          list.every(
            (w) =>
              w.agent.status.security_policy_sync_state === 'synced' &&
              w.agent.status.security_policy_applied_version === version,
          )
          ? list
          : undefined
      },
      ms,
      250,
    )
  const provision = async (via: LabServer, description: string) =>
    (await via.apiOk('POST', '/api/v2/orgs/1/sec_policy', { update_description: description }, 201))
      .version

  beforeAll(async () => {
    pg = await startTestPostgres()
    const database = await pg.freshDatabase()
    dir = await mkdtemp(join(tmpdir(), 'palisade-cluster-'))
    const secret = join(dir, 'cluster.secret')
    await writeFile(secret, `${'7f'.repeat(32)}\n`, { mode: 0o600 })
    const args = ['--database', database, '--cluster-secret-file', secret]
    lab = await Lab.create(['s1', 's2', 'h1', 'h2', 'h3', 'h4'])
    servers.push(await LabServer.start(lab.host('s1').ns, serverIp(0), 8443, args))
    // The second server finds the org made and writes no bootstrap file: it is given the first's.
    servers.push(
      await LabServer.start(
        lab.host('s2').ns,
        serverIp(1),
        8443,
        args,
        undefined,
        servers[0]?.bootstrap,
      ),
    )
    const [s1, s2] = servers as [LabServer, LabServer]
    for (const [k, v] of [
      ['role', 'web'],
      ['role', 'db'],
      ['env', 'prod'],
    ] as const)
      href[v] = String(
        (await s1.apiOk('POST', '/api/v2/orgs/1/labels', { key: k, value: v }, 201)).href,
      )
    const code = {
      web: await s1.activationCode('web', [href.web ?? '', href.prod ?? '']),
      db: await s2.activationCode('db', [href.db ?? '', href.prod ?? '']),
    }
    const cfg = { heartbeatMs: 1000, confirmMs: 15_000, surveyMs: 2000 }
    const both = [s1, s2].map((s) => s.endpoint)
    // h1 and h2 list s1 first, h3 and h4 s2: two agents on each server. One CA for both.
    const backends = { h1: 'nftables', h2: 'iptables-nft', h3: 'nftables', h4: 'iptables-legacy' }
    for (const h of Object.keys(HOSTS) as Host[]) {
      const list = h === 'h1' || h === 'h2' ? both : [...both].reverse()
      agents[h] = await Agent.pair(
        lab.host(h).ns,
        backends[h],
        { endpoint: list.join(','), bootstrap: s1.bootstrap },
        code[HOSTS[h]],
        cfg,
      )
      peers[h] = LabPeer.start(lab.host(h).ns)
      await peers[h].listen(HOSTS[h] === 'db' ? [5432, 5433] : [80], [])
    }
  }, 180_000)

  afterAll(async () => {
    for (const a of Object.values(agents)) await a.cleanup()
    for (const p of Object.values(peers)) await p.stop()
    for (const s of servers) await s.cleanup()
    await lab?.destroy()
    await pg?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('serves agents from both servers, and a provision through one reaches the agents on the other', async () => {
    const [s1, s2] = servers as [LabServer, LabServer]
    expect(await channelsOf('h1')).toEqual([serverIp(0)])
    expect(await channelsOf('h3')).toEqual([serverIp(1)])
    await s1.allowRule('web to db', [href.prod ?? ''], {
      providers: href.db ?? '',
      consumers: href.web ?? '',
      tcpPorts: [5432],
    })
    const version = await provision(s2, 'web may reach db')
    await allSynced(s1, version)
    expect(await peers.h1.probe([{ proto: 'tcp', host: lab.host('h4').ip4, port: 5432 }])).toEqual([
      'open',
    ])
    expect(await peers.h3.probe([{ proto: 'tcp', host: lab.host('h2').ip4, port: 5433 }])).toEqual([
      'timeout',
    ])
  })

  it('kill -9 one server: its agents move to the other with no policy gap, and a provision through the survivor reaches all', async () => {
    const [s1, s2] = servers as [LabServer, LabServer]
    const before = await Promise.all((Object.keys(HOSTS) as Host[]).map((h) => agents[h].status()))
    const killedAt = performance.now()
    await s1.stop('SIGKILL')
    // Failed over: the agent holds a connection to the survivor (it had none before).
    const moving = Promise.all(
      (['h1', 'h2'] as const).map((h) =>
        waitFor(
          `the agent on ${h} to reach s2`,
          async () => ((await channelsOf(h)).includes(serverIp(1)) ? performance.now() : undefined),
          10_000,
          10,
        ),
      ),
    )
    // The kernel keeps each host's ruleset: what the policy allows passes, the rest is dropped.
    expect(await peers.h1.probe([{ proto: 'tcp', host: lab.host('h2').ip4, port: 5432 }])).toEqual([
      'open',
    ])
    expect(await peers.h2.probe([{ proto: 'tcp', host: lab.host('h1').ip4, port: 80 }])).toEqual([
      'timeout',
    ])
    const moved = await moving
    const failoverMs = Math.max(...moved) - killedAt
    for (const h of ['h1', 'h2'] as const)
      await waitFor(`the agent on ${h} to say it moved`, () =>
        Promise.resolve(agents[h].log.includes('moved to another policy server') || undefined),
      )
    for (const h of Object.keys(HOSTS) as Host[]) {
      expect(await channelsOf(h), `${h} talks to the survivor`).toContain(serverIp(1))
      const s = await agents[h].status()
      expect(s?.enforcement.health, `${h} stays healthy`).toBe('healthy')
      expect(s?.enforcement.applied?.version, `${h} keeps its ruleset`).toBe(
        before[Object.keys(HOSTS).indexOf(h)]?.enforcement.applied?.version,
      )
    }

    await s2.allowRule('web to db 5433', [href.prod ?? ''], {
      providers: href.db ?? '',
      consumers: href.web ?? '',
      tcpPorts: [5433],
    })
    const provisionedAt = performance.now()
    const version = await provision(s2, 'web may reach db on 5433, one server down')
    await allSynced(s2, version)
    const provisionToSyncedMs = performance.now() - provisionedAt
    expect(await peers.h1.probe([{ proto: 'tcp', host: lab.host('h4').ip4, port: 5433 }])).toEqual([
      'open',
    ])
    expect(await peers.h3.probe([{ proto: 'tcp', host: lab.host('h2').ip4, port: 5433 }])).toEqual([
      'open',
    ])
    // They stay synced: heartbeats every second keep going to the survivor.
    const lastContact = async () =>
      Promise.all(
        (Object.keys(HOSTS) as Host[]).map(async (h) => (await agents[h].status())?.server),
      )
    const seen = await lastContact()
    await waitFor('two more heartbeats from every agent', async () => {
      const now = await lastContact()
      return now.every((s, i) => s?.connected && s.lastContactAt !== seen[i]?.lastContactAt)
        ? true
        : undefined
    })
    await allSynced(s2, version, 5000)
    console.log(
      JSON.stringify({
        cluster: { servers: 2, agents: 4, killed: 1 },
        failover_ms: Math.round(failoverMs),
        provision_to_synced_one_node_down_ms: Math.round(provisionToSyncedMs),
      }),
    )
  })
})
