/**
 * End to end on the real kernel: a policy server in its own namespace, three hosts whose real
 * agents pair by activation code (each on another backend), labels and rules through the API,
 * provisioning, and connectivity between the hosts checked against the policy in each mode,
 * over IPv4 and IPv6 (the lab's ULA addresses, which the agents report like their IPv4 ones).
 */
import { runChecked } from '@palisade/agent'
import type { LabAgent } from '@palisade/lab'
import { Lab, LabAgent as Agent, LabPeer, LabServer, waitFor } from '@palisade/lab'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

type Json = Record<string, unknown>

describe('end to end: server, three paired agents, policy, modes', () => {
  let lab: Lab
  let server: LabServer
  const agents: Record<string, LabAgent> = {}
  const peers: Record<string, LabPeer> = {}
  const href: Record<string, string> = {}

  const api = async (method: string, path: string, body?: unknown, want?: number) => {
    const r = await server.api(method, path, body)
    if (want !== undefined)
      expect(r.status, `${method} ${path}: ${JSON.stringify(r.body)}`).toBe(want)
    return r.body as Json
  }
  const workloadOf = async (host: string) =>
    (
      (await api(
        'GET',
        `/api/v2/orgs/1/workloads?hostname=${host}&match_type=exact`,
      )) as unknown as Json[]
    )[0] as Json

  /** Every agent reports the server's current host policy as applied and verified. */
  const allSynced = async () => {
    try {
      return await synced()
    } catch (e) {
      const list = (await api('GET', '/api/v2/orgs/1/workloads?managed=true')) as unknown as Json[]
      const view = list.map((w) => ({
        raw: w.token ? w : undefined,
        host: w.hostname,
        agent: (w.agent as Json | null)?.status,
        palisade: w.palisade,
      }))
      const st = await Promise.all(
        Object.entries(agents).map(async ([n, a]) => ({
          n,
          status: await a.status(),
          log: a.log.slice(-600),
        })),
      )
      throw new Error(
        `${(e as Error).message}\nserver view: ${JSON.stringify(view)}\nagents: ${JSON.stringify(st)}`,
        { cause: e },
      )
    }
  }
  const synced = () =>
    waitFor(
      'every agent to be synced',
      async () => {
        const list = (await api('GET', '/api/v2/orgs/1/workloads?managed=true')) as unknown as {
          agent: { status: { security_policy_sync_state: string } }
        }[]
        return list.length === 3 &&
          list.every((w) => w.agent.status.security_policy_sync_state === 'synced')
          ? list
          : undefined
      },
      20_000,
      // the API allows 500 requests a minute per key, as the vendor's does
      250,
    )

  beforeAll(async () => {
    lab = await Lab.create(['srv', 'web1', 'web2', 'db'])
    server = await LabServer.start(lab.host('srv').ns, lab.host('srv').ip4)
    for (const [k, v] of [
      ['role', 'web'],
      ['role', 'db'],
      ['env', 'prod'],
    ] as const)
      href[v] = String((await api('POST', '/api/v2/orgs/1/labels', { key: k, value: v }, 201)).href)
    const webCode = await server.activationCode('web', [href.web ?? '', href.prod ?? ''])
    const dbCode = await server.activationCode('db', [href.db ?? '', href.prod ?? ''])
    // the agents look at their host (addresses, firewalls) every 2 s instead of every minute
    const cfg = { heartbeatMs: 1000, confirmMs: 15_000, surveyMs: 2000 }
    agents.web1 = await Agent.pair(lab.host('web1').ns, 'nftables', server, webCode, cfg)
    agents.web2 = await Agent.pair(lab.host('web2').ns, 'iptables-nft', server, webCode, cfg)
    agents.db = await Agent.pair(lab.host('db').ns, 'iptables-legacy', server, dbCode, cfg)
    // srv has no agent: a client whose own output nothing filters
    for (const h of ['srv', 'web1', 'web2', 'db']) peers[h] = LabPeer.start(lab.host(h).ns)
    await peers.db?.listen([5432, 5433], [])
    await peers.web1?.listen([80, 8080], [])
    await peers.web2?.listen([80, 8080], [])
  }, 120_000)

  afterAll(async () => {
    for (const a of Object.values(agents)) await a.cleanup()
    for (const p of Object.values(peers)) await p.stop()
    await server?.cleanup()
    await lab?.destroy()
  })

  it('pairs three agents, provisions a rule, and every agent applies it: connectivity follows the policy', async () => {
    await server.allowRule('web to db', [href.prod ?? ''], {
      providers: href.db ?? '',
      consumers: href.web ?? '',
      tcpPorts: [5432, 5433],
    })
    await server.allowRule('web to web', [href.prod ?? ''], {
      providers: href.web ?? '',
      consumers: href.web ?? '',
      tcpPorts: [8080],
    })
    const started = performance.now()
    const v = await api(
      'POST',
      '/api/v2/orgs/1/sec_policy',
      { update_description: 'web may reach db' },
      201,
    )
    expect(v.workloads_affected).toBe(3)
    await allSynced()
    console.log(`provision to all 3 agents synced: ${Math.round(performance.now() - started)} ms`)
    const db = lab.host('db').ip4
    expect(await peers.web1?.probe([{ proto: 'tcp', host: db, port: 5432 }])).toEqual(['open'])
    expect(await peers.web2?.probe([{ proto: 'tcp', host: db, port: 5433 }])).toEqual(['open'])
    // full enforcement: what no rule allows is blocked, both ways
    expect(await peers.db?.probe([{ proto: 'tcp', host: lab.host('web1').ip4, port: 80 }])).toEqual(
      ['timeout'],
    )

    // IPv6: every backend (web1 nftables, web2 iptables-nft, db iptables-legacy) passes an
    // allowed connection in and out, and blocks what no rule allows; srv as the client of the
    // blocked ones, so that the target's own input chain is what blocks. 1.5 s for the allowed
    // ones: each is the first contact between the two, neighbour discovery included.
    const v6 = (h: string) => lab.host(h).ip6
    const allowedV6 = [
      ['web1', 'db', 5432], // nftables out, iptables-legacy in (its reply: legacy out)
      ['web2', 'db', 5433], // iptables-nft out, iptables-legacy in
      ['web1', 'web2', 8080], // nftables out, iptables-nft in
      ['web2', 'web1', 8080], // iptables-nft out, nftables in
    ] as const
    for (const [from, to, port] of allowedV6)
      expect(
        await peers[from]?.probe([{ proto: 'tcp', host: v6(to), port }], 1500),
        `IPv6 ${from} -> ${to}:${port}`,
      ).toEqual(['open'])
    expect(
      await peers.srv?.probe([
        { proto: 'tcp', host: v6('web1'), port: 8080 }, // nftables in
        { proto: 'tcp', host: v6('web2'), port: 8080 }, // iptables-nft in
        { proto: 'tcp', host: v6('db'), port: 5432 }, // iptables-legacy in
      ]),
      'IPv6 from a host no rule names',
    ).toEqual(['timeout', 'timeout', 'timeout'])
    expect(
      await peers.db?.probe([{ proto: 'tcp', host: v6('web1'), port: 80 }]),
      'IPv6 db -> web1:80, iptables-legacy out',
    ).toEqual(['timeout'])
    expect(
      await peers.web1?.probe([{ proto: 'tcp', host: v6('web2'), port: 80 }]),
      'IPv6 web1 -> web2:80, nftables out',
    ).toEqual(['timeout'])
    expect(
      await peers.web2?.probe([{ proto: 'tcp', host: v6('web1'), port: 80 }]),
      'IPv6 web2 -> web1:80, iptables-nft out',
    ).toEqual(['timeout'])

    const w = await workloadOf('db')
    expect(w.firewall_coexistence).toBeNull()
    expect((w.agent as { status: Json }).status.security_policy_applied_version).toBe(v.version)
    // agent status reached the server: health and survey
    expect(((w.palisade as Json).host as Json).firewalls).toEqual([])
  })

  it('moves a live host between exclusive, primary and non-primary without dropping an allowed connection', async () => {
    const db = lab.host('db')
    await peers.web1?.hold('pg', db.ip4, 5432)
    // a foreign rule after ours on the db host
    await runChecked(db.run, 'iptables-legacy', [
      '-A',
      'INPUT',
      '-p',
      'tcp',
      '--dport',
      '5433',
      '-j',
      'DROP',
    ])
    const probe5433 = async () =>
      (await peers.web2?.probe([{ proto: 'tcp', host: db.ip4, port: 5433 }]))?.[0]
    expect(
      await probe5433(),
      'exclusive: our accept is final, the foreign drop is never reached',
    ).toBe('open')
    const setMode = async (items: unknown[]) => {
      await api(
        'PUT',
        '/api/v2/orgs/1/sec_policy/draft/firewall_settings',
        { firewall_coexistence: items },
        204,
      )
      await api(
        'POST',
        '/api/v2/orgs/1/sec_policy',
        {
          change_subset: {
            firewall_settings: [{ href: '/orgs/1/sec_policy/draft/firewall_settings' }],
          },
        },
        201,
      )
      await allSynced()
    }
    await setMode([{ scope: [{ href: href.db }], illumio_primary: true }])
    expect((await workloadOf('db')).firewall_coexistence).toEqual({ illumio_primary: true })
    expect((await workloadOf('web1')).firewall_coexistence).toBeNull()
    expect(await probe5433(), 'primary: what we allow passes on to the foreign drop').toBe(
      'timeout',
    )
    expect(await peers.web1?.echo('pg'), 'the established connection survives').toBe(true)
    await setMode([{ scope: [{ href: href.db }], illumio_primary: false }])
    expect((await workloadOf('db')).firewall_coexistence).toEqual({ illumio_primary: false })
    const save = await runChecked(db.run, 'iptables-legacy-save', ['-t', 'filter'])
    const input = save.split('\n').filter((l) => l.startsWith('-A INPUT'))
    expect(input[input.length - 1], 'non-primary: our hook is appended last').toMatch(
      /-j PALISADE-INPUT/,
    )
    expect(await probe5433()).toBe('timeout')
    expect(await peers.web1?.echo('pg')).toBe(true)
    await setMode([])
    expect((await workloadOf('db')).firewall_coexistence).toBeNull()
    expect(
      await probe5433(),
      'exclusive again: the foreign rule before our hook is overwritten',
    ).toBe('open')
    expect(await peers.web1?.echo('pg')).toBe(true)
    const changes = (await api(
      'GET',
      '/api/v2/orgs/1/events?event_type=firewall_settings.update',
    )) as unknown as unknown[]
    expect(changes.length).toBe(3)
  })

  it("follows a host's new address: its agent reports it, and the db host's kernel set takes it", async () => {
    const web2 = lab.host('web2')
    const links = JSON.parse(await runChecked(web2.run, 'ip', ['-j', 'addr', 'show'])) as {
      ifname: string
      addr_info?: { local: string }[]
    }[]
    const dev = links.find((l) => l.addr_info?.some((a) => a.local === web2.ip4))?.ifname
    expect(dev, `the interface of ${web2.ip4}`).toBeDefined()
    const added = '198.19.200.2'
    await runChecked(web2.run, 'ip', ['addr', 'add', `${added}/32`, 'dev', dev ?? ''])
    await waitFor(
      'the server to show the new address',
      async () =>
        ((await workloadOf('web2')).interfaces as { address: string }[]).some(
          (i) => i.address === added,
        ) || undefined,
      15_000,
      250,
    )
    // the db host (iptables-legacy) holds its peers in ipsets
    await waitFor(
      "the db host's kernel set to hold the new address",
      async () =>
        (await runChecked(lab.host('db').run, 'ipset', ['list'])).includes(added) || undefined,
      15_000,
      250,
    )
    await allSynced()
    expect(
      ((await api('GET', '/api/v2/orgs/1/events?event_type=workload.update')) as unknown as Json[])
        .length,
    ).toBeGreaterThanOrEqual(1)
  })

  it('sends a large peer set by id: every kernel takes the 100 web hosts, then the one added', async () => {
    // Unmanaged web hosts (no agent): peers of the db host (web to db) and of the web hosts
    // (web to web). Every other address, so no two merge into one CIDR: 100 entries, more than
    // a policy writes out (INLINE_SET_MAX), so each agent fetches the set and then a delta.
    const bulk = (from: number, n: number) =>
      Array.from({ length: n }, (_, k) => ({
        name: `bulk-web-${from + k}`,
        hostname: `bulk-web-${from + k}`,
        labels: [{ href: href.web }, { href: href.prod }],
        interfaces: [{ name: 'eth0', address: `198.19.100.${(from + k) * 2}` }],
      }))
    const kernelHas = async (host: string, address: string) => {
      const h = lab.host(host)
      const listing =
        host === 'web1'
          ? await runChecked(h.run, 'nft', ['list', 'ruleset'])
          : await runChecked(h.run, 'ipset', ['list'])
      return listing.includes(address) || undefined
    }
    await api('PUT', '/api/v2/orgs/1/workloads/bulk_create', bulk(0, 100), 200)
    for (const host of ['db', 'web1', 'web2'])
      await waitFor(
        `${host}'s kernel to hold the 100th web host`,
        () => kernelHas(host, '198.19.100.198'),
        15_000,
        250,
      )
    await allSynced()
    await api('PUT', '/api/v2/orgs/1/workloads/bulk_create', bulk(110, 1), 200)
    for (const host of ['db', 'web1', 'web2'])
      await waitFor(
        `${host}'s kernel to hold the web host added`,
        () => kernelHas(host, '198.19.100.220'),
        15_000,
        250,
      )
    await allSynced()
    for (const host of ['db', 'web1', 'web2'])
      expect(await kernelHas(host, '198.19.100.0'), `${host} keeps the first web host`).toBe(true)
    // What the policy allowed before still passes.
    expect(
      await peers.web1?.probe([{ proto: 'tcp', host: lab.host('db').ip4, port: 5432 }]),
    ).toEqual(['open'])
  })

  it('keeps enforcing while the server is away, delivers buffered events once it is back, and repairs tampering meanwhile', async () => {
    const db = lab.host('db')
    const web1 = lab.host('web1').ip4
    const web2 = lab.host('web2').ip4
    /**
     * What the policy allows stays open and what it blocks stays blocked, on every backend:
     * web1 (nftables) and web2 (iptables-nft) reach db (iptables-legacy) on the allowed ports;
     * from srv, which no rule names, each host's inbound policy blocks the same listeners.
     */
    const enforced = async (when: string) => {
      const probes = {
        'web1 -> db:5432 (allowed)': peers.web1?.probe([
          { proto: 'tcp', host: db.ip4, port: 5432 },
        ]),
        'web2 -> db:5433 (allowed)': peers.web2?.probe([
          { proto: 'tcp', host: db.ip4, port: 5433 },
        ]),
        'srv -> web1:80 (nftables blocks)': peers.srv?.probe([
          { proto: 'tcp', host: web1, port: 80 },
        ]),
        'srv -> web2:80 (iptables-nft blocks)': peers.srv?.probe([
          { proto: 'tcp', host: web2, port: 80 },
        ]),
        'srv -> db:5432 (iptables-legacy blocks)': peers.srv?.probe([
          { proto: 'tcp', host: db.ip4, port: 5432 },
        ]),
        'db -> web1:80 (blocked both ways)': peers.db?.probe([
          { proto: 'tcp', host: web1, port: 80 },
        ]),
      }
      const seen: Record<string, string | undefined> = {}
      for (const [k, p] of Object.entries(probes)) seen[k] = (await p)?.[0]
      expect(seen, when).toEqual({
        'web1 -> db:5432 (allowed)': 'open',
        'web2 -> db:5433 (allowed)': 'open',
        'srv -> web1:80 (nftables blocks)': 'timeout',
        'srv -> web2:80 (iptables-nft blocks)': 'timeout',
        'srv -> db:5432 (iptables-legacy blocks)': 'timeout',
        'db -> web1:80 (blocked both ways)': 'timeout',
      })
    }
    await enforced('with the server up')
    await server.stop()
    await waitFor('every agent to know the server is away', async () => {
      const states = await Promise.all(Object.values(agents).map((a) => a.status()))
      return states.every((s) => s?.server?.connected === false) ? true : undefined
    })
    await enforced('while the server is away')
    const repairs = async () => (await agents.db?.status())?.enforcement.tampering.repairs ?? 0
    const repairsBefore = await repairs()
    await runChecked(db.run, 'iptables-legacy', ['-F', 'PALISADE-INPUT'])
    await waitFor('the repair while the server is down', async () =>
      (await repairs()) > repairsBefore ? true : undefined,
    )
    await enforced('after the repair, the server still away')
    server.spawn()
    const got = await waitFor(
      'the buffered tampering event to reach the server',
      async () => {
        const list = (await api(
          'GET',
          '/api/v2/orgs/1/events?event_type=agent.tampering',
        )) as unknown as Json[]
        return list.length > 0 ? list : undefined
      },
      30_000,
      500,
    )
    expect(got).toHaveLength(1)
    expect(got[0]?.created_by).toMatchObject({ agent: { hostname: expect.any(String) as string } })
  })
})

describe('end to end: unpair from the server', () => {
  it('tells the agent, which restores the firewall as asked, forgets itself, and leaves', async () => {
    const lab = await Lab.create(['srv', 'u1'])
    const server = await LabServer.start(lab.host('srv').ns, lab.host('srv').ip4)
    let agent: LabAgent | undefined
    try {
      const api = (method: string, path: string, body?: unknown) => server.api(method, path, body)
      const p = (
        await api('POST', '/api/v2/orgs/1/pairing_profiles', {
          name: 'u',
          enforcement_mode: 'full',
        })
      ).body as Json
      const code = String(
        ((await api('POST', `/api/v2${String(p.href)}/pairing_key`, {})).body as Json)
          .activation_code,
      )
      agent = await Agent.pair(lab.host('u1').ns, 'nftables', server, code, { heartbeatMs: 1000 })
      await agent.waitHealthy()
      const vens = (await api('GET', '/api/v2/orgs/1/vens')).body as Json[]
      expect(
        (
          await api('PUT', '/api/v2/orgs/1/vens/unpair', {
            vens: [{ href: vens[0]?.href }],
            firewall_restore: 'closed',
          })
        ).status,
      ).toBe(204)
      await waitFor(
        'the agent to leave',
        () => Promise.resolve(!agent?.running ? true : undefined),
        60_000,
        100,
      )
      const tables = await runChecked(lab.host('u1').run, 'nft', ['list', 'tables'])
      expect(tables).toContain('palisade_closed')
      expect(tables).not.toMatch(/inet palisade$/m)
      const types = ((await api('GET', '/api/v2/orgs/1/events')).body as Json[]).map(
        (e) => e.event_type,
      )
      expect(
        (await api('GET', '/api/v2/orgs/1/vens')).body,
        `${agent.log.slice(-1500)} events: ${types.join(',')}`,
      ).toEqual([])
      expect(
        ((await api('GET', '/api/v2/orgs/1/events?event_type=agents.unpair')).body as unknown[])
          .length,
      ).toBe(1)
    } finally {
      await agent?.cleanup()
      await server.cleanup()
      await lab.destroy()
    }
  })
})
