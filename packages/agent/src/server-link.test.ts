import { hostPolicyFromLocalFile } from '@palisade/model'
import type { AddressSet } from '@palisade/model'
import { addressSetOf } from '@palisade/model'
import type {
  PolicyReply,
  RestoreMode,
  SetsRequest,
  StatusReply,
  StatusReport,
} from '@palisade/protocol'
import { addressSetId, setDelta, SetReferencer } from '@palisade/protocol'
import { describe, expect, it } from 'vitest'
import { FakeClock } from './clock-fake.fixture.js'
import type { Reply } from './server-client.js'
import type { ChannelClient } from './server-link.js'
import { ServerLink } from './server-link.js'

/** A policy as the server sends it: the JSON of a computed host policy. */
const POLICY = JSON.parse(
  JSON.stringify(
    hostPolicyFromLocalFile({
      version: 5,
      firewall_coexistence: { illumio_primary: true },
      rules: [
        {
          action: 'allow',
          direction: 'outbound',
          peers: ['198.18.0.53'],
          services: [{ proto: 17, port: 53 }],
        },
      ],
    }),
  ),
) as Record<string, unknown>

/** A server the test answers: policy requests wait until `answer`, other calls get `replies`. */
class FakeServer implements ChannelClient {
  readonly calls: { method: string; path: string; body: unknown }[] = []
  readonly #polls: ((r: Reply) => void)[] = []
  statusReply: Reply = { status: 204, body: undefined }
  /** The answer to a sets request (the request's body given). */
  setsReply: (body: SetsRequest) => Reply = () => ({ status: 404, body: undefined })

  call(method: string, path: string, body?: unknown): Promise<Reply> {
    this.calls.push({ method, path, body })
    if (method === 'GET') return new Promise((resolve) => this.#polls.push(resolve))
    if (path.endsWith('/status')) return Promise.resolve(this.statusReply)
    if (path.endsWith('/address_sets')) return Promise.resolve(this.setsReply(body as SetsRequest))
    return Promise.resolve({ status: 204, body: undefined })
  }

  answer(status: number, body?: unknown): void {
    const next = this.#polls.shift()
    if (!next) throw new Error('no policy request is waiting')
    next({ status, body })
  }

  get waiting(): number {
    return this.#polls.length
  }

  /** The `known` of each policy request so far. */
  get polledWith(): string[] {
    return this.calls
      .filter((c) => c.method === 'GET')
      .map((c) => new URL(c.path, 'https://x').searchParams.get('known') ?? '?')
  }
}

/** `random` is the link's jitter: by default none (each back-off waits its whole bound). */
function setup(onChange: () => void = () => undefined, random = () => 1) {
  const clock = new FakeClock()
  const server = new FakeServer()
  const seen = {
    policies: [] as PolicyReply[],
    unpairs: [] as RestoreMode[],
    refused: [] as string[],
    unchanged: [] as (string | undefined)[],
    delivered: 0,
    logs: [] as Record<string, unknown>[],
    orders: [] as StatusReply[],
  }
  let retry = false
  const noUploads = { upload: () => Promise.resolve() }
  const link = new ServerLink({
    client: server,
    url: 'https://198.18.0.1:8443',
    agentId: 'a1',
    clock,
    events: noUploads,
    flows: noUploads,
    heartbeatMs: 60_000,
    log: (l) => seen.logs.push(l),
    report: () =>
      Promise.resolve({
        body: { backend: 'nftables' } satisfies StatusReport,
        delivered: () => void seen.delivered++,
      }),
    retryReports: () => retry,
    onPolicy: (r) => seen.policies.push(r),
    onRefused: (reason) => seen.refused.push(reason),
    onUnchanged: (hash) => seen.unchanged.push(hash),
    onUnpair: (m) => seen.unpairs.push(m),
    onChange,
    onOrders: (r) => seen.orders.push(r),
    random,
  })
  return { clock, server, seen, link, retryWhile: (v: boolean) => (retry = v) }
}

describe('server link', () => {
  it('passes a checked policy on, then asks with its hash', async () => {
    const t = setup()
    t.link.start('k0')
    await t.clock.advance(0)
    t.server.answer(200, { hash: '00ff', policy: POLICY })
    await t.clock.advance(0)
    expect(t.seen.policies).toEqual([{ hash: '00ff', policy: POLICY }])
    expect(t.server.polledWith).toEqual(['k0', '00ff'])
    expect(t.link.state).toMatchObject({ connected: true })
    t.server.answer(304)
    await t.clock.advance(0)
    expect(t.server.polledWith).toEqual(['k0', '00ff', '00ff'])
    expect(t.seen.policies).toHaveLength(1)
    expect(t.seen.unchanged).toEqual(['00ff'])
  })

  it('fetches the sets a policy names, then only what changed, each checked against its id', async () => {
    const t = setup()
    const web = (n: number): AddressSet =>
      addressSetOf(Array.from({ length: n }, (_, i) => ({ from: `198.18.9.${i * 2}` })))
    const computed = (peers: AddressSet, version: number) =>
      hostPolicyFromLocalFile({
        version,
        rules: [
          {
            action: 'allow',
            direction: 'inbound',
            peers: [...peers.v4],
            services: [{ proto: 6, port: 5432 }],
          },
        ],
      })
    const server = new SetReferencer()
    const [w1, w2] = [web(100), web(101)]
    const [id1, id2] = [addressSetId(w1), addressSetId(w2)]
    const sent = (r: unknown) => ({ status: 200, body: JSON.parse(JSON.stringify(r)) as unknown })
    t.server.setsReply = () => sent({ sets: [{ id: id1, set: w1 }], gone: [] })
    t.link.start(undefined)
    await t.clock.advance(0)
    t.server.answer(200, { hash: '01', policy: server.docOf(computed(w1, 1)).doc })
    await t.clock.advance(0)
    expect(t.seen.policies).toEqual([{ hash: '01', policy: computed(w1, 1) }])
    const asked = () => t.server.calls.filter((c) => c.path.endsWith('/address_sets'))
    expect(asked().map((c) => c.body)).toEqual([{ want: [{ id: id1 }] }])

    // The set grows by one address: asked for as a change from the set held.
    const d = setDelta(w1, w2)
    t.server.setsReply = () => sent({ sets: [{ id: id2, from: id1, ...d }], gone: [] })
    t.server.answer(200, { hash: '02', policy: server.docOf(computed(w2, 2)).doc })
    await t.clock.advance(0)
    expect(asked()[1]?.body).toEqual({ want: [{ id: id2, from: id1 }] })
    expect(t.seen.policies[1]).toEqual({ hash: '02', policy: computed(w2, 2) })

    // A set that is not the one its id names is refused; nothing is applied.
    const forged = { v4: [...w1.v4, '203.0.113.7/32'], v6: [] }
    const w3 = web(102)
    t.server.setsReply = () => sent({ sets: [{ id: addressSetId(w3), set: forged }], gone: [] })
    t.server.answer(200, { hash: '03', policy: server.docOf(computed(w3, 3)).doc })
    await t.clock.advance(0)
    expect(t.seen.policies).toHaveLength(2)
    expect(t.seen.refused).toEqual([
      `the server's sets are refused: the server's set ${addressSetId(w3)} is not the set that id names; it is refused`,
    ])
    expect(t.link.state.connected).toBe(false)

    // The policy changed again while its set was asked for: asked again at once, with the old hash.
    await t.clock.advance(500)
    t.server.setsReply = () => sent({ sets: [], gone: [addressSetId(w3)] })
    t.server.answer(200, { hash: '03', policy: server.docOf(computed(w3, 3)).doc })
    await t.clock.advance(0)
    expect(t.seen.policies).toHaveLength(2)
    expect(t.server.polledWith.slice(-2)).toEqual(['02', '02'])
    expect(t.server.waiting).toBe(1)
  })

  it('refuses a malformed policy reply: nothing applied, the error said, asked again after back-off', async () => {
    const t = setup()
    t.link.start('k0')
    await t.clock.advance(0)
    const rules = POLICY.rules as Record<string, unknown>[]
    t.server.answer(200, {
      hash: '00ff',
      policy: { ...POLICY, rules: [{ ...rules[0], peers: { v4: ['0.0.0.0/0 accept'], v6: [] } }] },
    })
    await t.clock.advance(0)
    expect(t.seen.policies).toEqual([])
    expect(t.link.state.connected).toBe(false)
    expect(t.link.state.error).toMatch(
      /^the server's policy reply is malformed, so it is refused: \$\.policy\.rules\[0\]\.peers\.v4\[0\]: /,
    )
    expect(t.seen.logs).toContainEqual(expect.objectContaining({ msg: 'policy reply refused' }))
    // the agent is told, so it can say it is unhealthy (its own business to say it once)
    expect(t.seen.refused).toEqual([t.link.state.error])
    expect(t.server.waiting).toBe(0)
    await t.clock.advance(499)
    expect(t.server.waiting).toBe(0)
    await t.clock.advance(1)
    // still asking with the hash it had: the refused policy never counted as received
    expect(t.server.polledWith).toEqual(['k0', 'k0'])
    t.server.answer(200, { hash: '00ff', policy: { ...POLICY, extra: 1 } })
    await t.clock.advance(1000)
    expect(t.server.polledWith).toEqual(['k0', 'k0', 'k0'])
    expect(t.seen.policies).toEqual([])
    expect(t.seen.refused).toHaveLength(2)
  })

  it('starts its poll loop again when a fault escapes it', async () => {
    let faults = 1
    const t = setup(() => {
      if (faults-- > 0) throw new Error('status.json cannot be written')
    })
    t.link.start('k0')
    await t.clock.advance(0)
    t.server.answer(503, [{ token: 'unavailable', message: 'later' }])
    await t.clock.advance(0)
    expect(t.seen.logs).toContainEqual({
      msg: 'the policy loop failed; it starts again',
      error: 'status.json cannot be written',
    })
    expect(t.server.waiting).toBe(0)
    await t.clock.advance(500)
    expect(t.server.waiting).toBe(1)
    expect(t.server.polledWith).toEqual(['k0', 'k0'])
  })

  it('unpairs only on a well-formed unpair reply, and then stops asking', async () => {
    const t = setup()
    t.link.start(undefined)
    await t.clock.advance(0)
    t.server.answer(410, { unpair: { firewall_restore: 'wipe-everything' } })
    await t.clock.advance(0)
    expect(t.seen.unpairs).toEqual([])
    expect(t.link.state.error).toMatch(/unpair reply is malformed.*firewall_restore/)
    await t.clock.advance(500)
    t.server.answer(410, { unpair: { firewall_restore: 'saved' } })
    await t.clock.advance(60_000)
    expect(t.seen.unpairs).toEqual(['saved'])
    expect(t.server.waiting).toBe(0)
    expect(t.server.polledWith).toHaveLength(2)
  })

  it('keeps asking with back-off while the server refuses, saying why', async () => {
    const t = setup()
    t.link.start(undefined)
    await t.clock.advance(0)
    t.server.answer(401, [
      { token: 'agent_authentication_required', message: 'a valid agent credential is required' },
    ])
    await t.clock.advance(0)
    expect(t.link.state.error).toBe(
      'the server refused the policy request: a valid agent credential is required',
    )
    await t.clock.advance(500)
    t.server.answer(500, 'oops')
    await t.clock.advance(999)
    expect(t.server.waiting).toBe(0)
    await t.clock.advance(1)
    expect(t.server.waiting).toBe(1)
  })

  it('waits a random share of each back-off, so a fleet that lost its server comes back spread out', async () => {
    const shares = [0.25, 0.5, 0]
    const t = setup(undefined, () => shares.shift() ?? 1)
    t.link.start(undefined)
    await t.clock.advance(0)
    const fail = async () => {
      t.server.answer(503, [{ token: 'database_unavailable', message: 'later' }])
      await t.clock.advance(0)
    }
    // a quarter of the first bound (500 ms), then half of the second (1,000 ms)
    await fail()
    await t.clock.advance(124)
    expect(t.server.waiting).toBe(0)
    await t.clock.advance(1)
    expect(t.server.waiting).toBe(1)
    await fail()
    await t.clock.advance(499)
    expect(t.server.waiting).toBe(0)
    await t.clock.advance(1)
    expect(t.server.waiting).toBe(1)
    // nothing of the third: asked again at once
    await fail()
    expect(t.server.waiting).toBe(1)
    expect(t.server.polledWith).toHaveLength(4)
  })

  it('marks a report delivered only when the server stored it, retrying each second while asked', async () => {
    const t = setup()
    t.server.statusReply = { status: 503, body: undefined }
    t.retryWhile(true)
    t.link.start(undefined)
    await t.clock.advance(100)
    const reports = () => t.server.calls.filter((c) => c.path === '/agent/v1/agents/a1/status')
    expect(reports()).toHaveLength(1)
    expect(reports()[0]?.body).toEqual({ backend: 'nftables' })
    expect(t.seen.delivered).toBe(0)
    await t.clock.advance(1000)
    expect(reports()).toHaveLength(2)
    t.server.statusReply = { status: 204, body: undefined }
    await t.clock.advance(1000)
    expect(reports()).toHaveLength(3)
    expect(t.seen.delivered).toBe(1)
    // delivered: no more retries until the heartbeat
    await t.clock.advance(10_000)
    expect(reports()).toHaveLength(3)
    t.retryWhile(false)
    t.server.statusReply = { status: 503, body: undefined }
    await t.clock.advance(50_000)
    expect(reports()).toHaveLength(4)
    await t.clock.advance(10_000)
    expect(reports()).toHaveLength(4)
  })

  it('passes on checked orders from a status reply; malformed ones are refused, the report still delivered', async () => {
    const t = setup()
    const upgrade = { release: '0.2.0', sha256: 'ab'.repeat(32), size: 1000 }
    t.server.statusReply = { status: 200, body: { upgrade } }
    t.link.start(undefined)
    await t.clock.advance(100)
    expect(t.seen.orders).toEqual([{ upgrade }])
    expect(t.seen.delivered).toBe(1)
    t.server.statusReply = { status: 200, body: { upgrade: { ...upgrade, sha256: '../x' } } }
    t.link.reportSoon()
    await t.clock.advance(100)
    expect(t.seen.orders, 'nothing passed on').toHaveLength(1)
    expect(t.seen.delivered).toBe(2)
    expect(t.seen.logs).toContainEqual({
      msg: 'status reply refused',
      issues: [{ path: '$.upgrade.sha256', message: 'must be 64 hexadecimal digits' }],
    })
    expect(t.link.state.connected).toBe(true)
  })

  it('says goodbye when it stops', async () => {
    const t = setup()
    t.link.start(undefined)
    await t.link.stop()
    expect(t.server.calls.at(-1)).toEqual({
      method: 'POST',
      path: '/agent/v1/agents/a1/goodbye',
      body: {},
    })
  })
})
