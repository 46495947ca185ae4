/**
 * Shared address sets over the agent channel: a large peer set stored once and named by id, an
 * agent fetching only the sets its own policy names (whole, then as deltas), agents before
 * references getting every set written out, and sets no policy names swept.
 */
import type { AddressSet, HostPolicy, PolicyDoc } from '@palisade/model'
import type { SetsReply } from '@palisade/protocol'
import { checkPolicyReply, checkSetsReply, HeldSets, setRefsOf } from '@palisade/protocol'
import { describe, expect, it } from 'vitest'
import { sweepSets } from './stores/address-sets.js'
import type { TestServer } from './test-server.fixture.js'
import { serverOn } from './test-server.fixture.js'

const O = '/api/v2/orgs/1'

interface Agent {
  readonly agent_id: string
  readonly token: string
  readonly workload_href: string
}

describe.each(['sqlite', 'postgres'] as const)('shared address sets on %s', (dialect) => {
  let s: TestServer
  serverOn(dialect, (server) => (s = server))

  const created = async (path: string, body: unknown) => {
    const r = await s.call('POST', `${O}/${path}`, body)
    expect(r.statusCode, r.body).toBe(201)
    return (r.json() as { href: string }).href
  }
  const activate = async (label: string, hostname: string, address: string): Promise<Agent> => {
    const profile = await created('pairing_profiles', {
      name: hostname,
      enforcement_mode: 'full',
      labels: [{ href: label }],
    })
    const key = await s.call('POST', `/api/v2${profile}/pairing_key`, {})
    const r = await s.app.inject({
      method: 'POST',
      url: '/agent/v1/activate',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({
        activation_code: (key.json() as { activation_code: string }).activation_code,
        hostname,
        interfaces: [{ name: 'eth0', address }],
      }),
    })
    expect(r.statusCode, r.body).toBe(201)
    return r.json() as Agent
  }
  const bearer = (a: Agent) => ({ authorization: `Bearer ${a.token}` })
  const poll = async (a: Agent, refs: boolean) => {
    const r = await s.app.inject({
      url: `/agent/v1/agents/${a.agent_id}/policy?wait=0${refs ? '&sets=ref' : ''}`,
      headers: bearer(a),
    })
    expect(r.statusCode, r.body).toBe(200)
    return { bytes: r.body.length, ...(r.json() as { hash: string; policy: PolicyDoc }) }
  }
  const askSets = (a: Agent, body: unknown) =>
    s.app.inject({
      method: 'POST',
      url: `/agent/v1/agents/${a.agent_id}/address_sets`,
      headers: { ...bearer(a), 'content-type': 'application/json' },
      payload: JSON.stringify(body),
    })
  /** What the agent does with a policy: fetch what it lacks, check it, resolve. */
  const resolve = async (a: Agent, held: HeldSets, doc: PolicyDoc) => {
    const want = held.wanted(doc)
    const r = await askSets(a, { want })
    expect(r.statusCode, r.body).toBe(200)
    const checked = checkSetsReply(r.json())
    expect(checked.ok).toBe(true)
    const reply = (checked as { value: SetsReply }).value
    return { want, reply, bytes: r.body.length, policy: held.resolve(doc, reply.sets) }
  }
  /** Every other address, so that no two web hosts merge into one CIDR. */
  const webAddress = (k: number) => `198.18.${40 + Math.floor(k / 128)}.${(k % 128) * 2}`
  const webHosts = (from: number, n: number, web: string) =>
    Array.from({ length: n }, (_, i) => ({
      name: `web-${from + i}`,
      hostname: `web-${from + i}`,
      labels: [{ href: web }],
      interfaces: [{ name: 'eth0', address: webAddress(from + i) }],
    }))

  it('stores a large peer set once, sends it once, then only what changed', async () => {
    const web = await created('labels', { key: 'role', value: 'sets-web' })
    const dbRole = await created('labels', { key: 'role', value: 'sets-db' })
    const bulk = await s.call('PUT', `${O}/workloads/bulk_create`, webHosts(1, 100, web))
    expect(bulk.statusCode, bulk.body).toBe(200)
    const rs = await created('sec_policy/draft/rule_sets', { name: 'sets', scopes: [] })
    const rule = await s.call('POST', `/api/v2${rs}/sec_rules`, {
      providers: [{ label: { href: dbRole } }],
      consumers: [{ label: { href: web } }],
      ingress_services: [{ port: 5432, proto: 6 }],
    })
    expect(rule.statusCode, rule.body).toBe(201)
    expect((await s.call('POST', `${O}/sec_policy`, {})).statusCode).toBe(201)
    const db1 = await activate(dbRole, 'sets-db-1', '198.18.50.1')
    const db2 = await activate(dbRole, 'sets-db-2', '198.18.50.2')
    const webAgent = await activate(web, 'sets-web-agent', '198.18.51.1')
    // Activations recompute in the background: wait until both db hosts have the web agent.
    const hasPeer = async (a: Agent, address: string) =>
      JSON.stringify((await poll(a, false)).policy).includes(`"${address}/32"`)
    await expect.poll(() => hasPeer(db1, '198.18.51.1')).toBe(true)
    await expect.poll(() => hasPeer(db2, '198.18.51.1')).toBe(true)

    // Both db hosts name one set of the 101 web addresses; the store holds it once.
    const [p1, p2] = [await poll(db1, true), await poll(db2, true)]
    const [id] = setRefsOf(p1.policy)
    expect(id).toMatch(/^[0-9a-f]{32}$/)
    expect(setRefsOf(p2.policy)).toEqual([id])
    expect(checkPolicyReply({ hash: p1.hash, policy: p1.policy }).ok).toBe(true)
    const policies = await s.db.selectFrom('host_policies').select('policy').execute()
    expect(policies.filter((p) => p.policy.includes(webAddress(1)))).toEqual([])
    const stored = await s.db
      .selectFrom('address_sets')
      .select('addresses')
      .where('id', '=', id ?? '')
      .execute()
    expect(stored).toHaveLength(1)
    expect(stored[0]?.addresses).toContain(`"${webAddress(1)}/32"`)

    // An agent from before references gets the same policy written out.
    const old = await poll(db1, false)
    expect(old.hash).toBe(p1.hash)
    expect((old.policy.rules[0]?.peers as AddressSet).v4).toContain(`${webAddress(1)}/32`)
    const held = new HeldSets()
    const first = await resolve(db1, held, p1.policy)
    expect(first.want).toEqual([{ id }])
    expect(first.policy).toEqual(old.policy as HostPolicy)
    expect(p1.bytes, 'the policy names the set instead of writing it out').toBeLessThan(
      old.bytes / 2,
    )

    // One more web host: the set changes, and the db agent gets one address, not 102.
    const more = await s.call('PUT', `${O}/workloads/bulk_create`, webHosts(150, 1, web))
    expect(more.statusCode, more.body).toBe(200)
    await expect.poll(() => hasPeer(db1, webAddress(150))).toBe(true)
    const next = await poll(db1, true)
    const [id2] = setRefsOf(next.policy)
    const second = await resolve(db1, held, next.policy)
    expect(second.want).toEqual([{ id: id2, from: id }])
    expect(second.reply.sets).toEqual([
      {
        id: id2,
        from: id,
        add: { v4: [`${webAddress(150)}/32`], v6: [] },
        remove: { v4: [], v6: [] },
      },
    ])
    expect(second.bytes).toBeLessThan(first.bytes / 10)
    expect(second.policy).toEqual((await poll(db1, false)).policy as HostPolicy)

    // An agent reads only the sets its own policy names: the web agent's names none.
    const other = await askSets(webAgent, { want: [{ id: id2 }, { id: id2, from: id }] })
    expect(other.statusCode, other.body).toBe(200)
    expect(other.json()).toEqual({ sets: [], gone: [id2, id2] })
    // Another agent's route, no credential, a malformed body: refused, nothing sent.
    const theirs = await s.app.inject({
      method: 'POST',
      url: `/agent/v1/agents/${db1.agent_id}/address_sets`,
      headers: { ...bearer(webAgent), 'content-type': 'application/json' },
      payload: JSON.stringify({ want: [{ id: id2 }] }),
    })
    expect(theirs.statusCode).toBe(403)
    const none = await s.app.inject({
      method: 'POST',
      url: `/agent/v1/agents/${db1.agent_id}/address_sets`,
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ want: [{ id: id2 }] }),
    })
    expect(none.statusCode).toBe(401)
    const bad = await askSets(db1, { want: [{ id: "' or 1=1 --" }] })
    expect(bad.statusCode).toBe(406)
    expect(bad.body).toContain('$.want[0].id')

    // Sets no policy names are released, kept for deltas, then deleted; the one in use stays.
    const at = new Date().toISOString()
    const swept = await sweepSets(s.db, 1, at, at)
    expect(swept.released).toBeGreaterThanOrEqual(1)
    expect(swept.deleted).toBe(0)
    expect(await sweepSets(s.db, 1, at, new Date(Date.now() + 1000).toISOString())).toEqual({
      released: 0,
      deleted: swept.released,
    })
    const left = await s.db.selectFrom('address_sets').select(['id', 'released_at']).execute()
    expect(left).toEqual([{ id: id2, released_at: null }])
  })
})
