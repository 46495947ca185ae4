import { TableNode } from 'kysely'
import type { KyselyPlugin, QueryResult, RootOperationNode, UnknownRow } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestPostgres } from '../postgres.fixture.js'
import { startTestPostgres } from '../postgres.fixture.js'
import { storedPolicy } from '../stores/host-policies.js'
import type { TestServer } from '../test-server.fixture.js'
import { testServer } from '../test-server.fixture.js'
import { hostPolicyServices } from './services.js'

/**
 * Holds back the answer of the next read of `host_policies` until released: the read has run on
 * the store, and what it saw reaches its caller only later, as on a busy server.
 */
class HeldRead implements KyselyPlugin {
  #armed = false
  #held: unknown
  #release: (() => void) | undefined
  readonly #gate = new Promise<void>((r) => (this.#release = r))

  arm(): void {
    this.#armed = true
  }

  release(): void {
    this.#release?.()
  }

  /** Whether a read is being held. */
  get holding(): boolean {
    return this.#held !== undefined
  }

  transformQuery(args: { node: RootOperationNode; queryId: { queryId: string } }) {
    const from = args.node.kind === 'SelectQueryNode' ? args.node.from?.froms[0] : undefined
    const table = from && TableNode.is(from) ? from.table.identifier.name : undefined
    if (this.#armed && table === 'host_policies') {
      this.#armed = false
      this.#held = args.queryId
    }
    return args.node
  }

  async transformResult(args: {
    result: QueryResult<UnknownRow>
    queryId: { queryId: string }
  }): Promise<QueryResult<UnknownRow>> {
    if (args.queryId === this.#held) await this.#gate
    return args.result
  }
}

/** Counts the reads of `host_policies`. */
class CountedReads implements KyselyPlugin {
  count = 0

  transformQuery(args: { node: RootOperationNode }) {
    const from = args.node.kind === 'SelectQueryNode' ? args.node.from?.froms[0] : undefined
    if (from && TableNode.is(from) && from.table.identifier.name === 'host_policies') this.count++
    return args.node
  }

  transformResult(args: { result: QueryResult<UnknownRow> }): Promise<QueryResult<UnknownRow>> {
    return Promise.resolve(args.result)
  }
}

/** Pairs a host with a new profile; resolves with its workload id. */
async function activate(s: TestServer, hostname: string): Promise<string> {
  const p = await s.call('POST', '/api/v2/orgs/1/pairing_profiles', {
    name: hostname,
    enforcement_mode: 'visibility_only',
  })
  const { activation_code } = (
    await s.call('POST', `/api/v2${(p.json() as { href: string }).href}/pairing_key`, {})
  ).json() as { activation_code: string }
  const activated = await s.app.inject({
    method: 'POST',
    url: '/agent/v1/activate',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ activation_code, hostname, interfaces: [] }),
  })
  expect(activated.statusCode, activated.body).toBe(201)
  const id = (activated.json() as { workload_href: string }).workload_href.split('/').pop() ?? ''
  // The server computes the new host's policy on its own; once written, it computes no more, so
  // only the host-policy services a test makes see the changes the test makes in the store.
  await expect
    .poll(
      async () =>
        (
          await s.db
            .selectFrom('host_policies')
            .select('hash')
            .where('workload_id', '=', id)
            .executeTakeFirst()
        )?.hash,
    )
    .toEqual(expect.any(String))
  return id
}

/** Changed in the store directly, so that only the services the test made compute it. */
async function enforce(s: TestServer, workloadId: string): Promise<void> {
  await s.db
    .updateTable('workloads')
    .set({ enforcement_mode: 'full' })
    .where('id', '=', workloadId)
    .execute()
}

const never = new AbortController().signal

describe.each(['sqlite', 'postgres'])('host policies on %s', (dialect) => {
  let s: TestServer
  let pg: TestPostgres | undefined
  beforeAll(async () => {
    if (dialect === 'postgres') pg = await startTestPostgres()
    s = await testServer(pg ? await pg.freshDatabase() : undefined)
  })
  afterAll(async () => {
    await s?.close()
    await pg?.stop()
  })

  it('answers a wait of 0 with the stored policy, and a later change wakes a waiter', async () => {
    const workloadId = await activate(s, 'wait-1')
    const { hostPolicies, policyFeed } = hostPolicyServices(s.db)
    await hostPolicies.recompute(1)
    const first = await policyFeed.waitForChange(workloadId, undefined, 0, never)
    expect(first?.hash).toEqual(expect.any(String))
    expect(await policyFeed.waitForChange(workloadId, first?.hash, 0, never)).toBeUndefined()

    const waited = policyFeed.waitForChange(workloadId, first?.hash, 4000, never)
    await enforce(s, workloadId)
    expect(await hostPolicies.recompute(1)).toBe(1)
    const got = await waited
    expect(got?.hash, 'woken with the new policy').not.toBe(first?.hash)
    expect(got?.hash).toBe((await storedPolicy(s.db, workloadId))?.hash)
  })

  it('answers an idle agent asking again from memory, and still wakes it for a change another server wrote', async () => {
    const workloadId = await activate(s, 'idle-1')
    const other = await activate(s, 'idle-2')
    const reads = new CountedReads()
    const { hostPolicies, policyFeed } = hostPolicyServices(s.db.withPlugin(reads))
    await hostPolicies.recompute(1)
    // Another agent waiting keeps the store watch running, as a fleet does.
    const abort = new AbortController()
    const otherHash = (await storedPolicy(s.db, other))?.hash
    const keepsWatching = policyFeed.waitForChange(other, otherHash, 60_000, abort.signal)
    const first = await policyFeed.waitForChange(workloadId, undefined, 0, never)
    expect(first?.hash).toEqual(expect.any(String))
    const before = reads.count
    for (let i = 0; i < 3; i++)
      expect(await policyFeed.waitForChange(workloadId, first?.hash, 0, never)).toBeUndefined()
    expect(reads.count, 'asked again with the hash it has: no read').toBe(before)

    // Another server's write (straight to the store here): the watch sees it, the memory goes.
    const later = new Date(Date.now() + 1000).toISOString()
    await s.db
      .updateTable('host_policies')
      .set({ hash: 'written-elsewhere', updated_at: later })
      .where('workload_id', '=', workloadId)
      .execute()
    // Asked again without waiting, until the watch has seen the write: a memory that outlived
    // it would answer "unchanged" for ever.
    const now = async () =>
      (await policyFeed.waitForChange(workloadId, first?.hash, 0, never))?.hash
    await expect.poll(now, { timeout: 10_000 }).toBe('written-elsewhere')
    abort.abort()
    expect(await keepsWatching, 'the other agent had nothing new').toBeUndefined()
  })

  it('answers from memory a fleet that asks again once one change woke every waiter', async () => {
    const workloadId = await activate(s, 'woken-1')
    const reads = new CountedReads()
    const { hostPolicies, policyFeed } = hostPolicyServices(s.db.withPlugin(reads))
    await hostPolicies.recompute(1)
    const first = await policyFeed.waitForChange(workloadId, undefined, 0, never)
    // the only waiter: the change ends every wait at once, as a provision does a fleet's
    const waited = policyFeed.waitForChange(workloadId, first?.hash, 60_000, never)
    await enforce(s, workloadId)
    expect(await hostPolicies.recompute(1)).toBe(1)
    const got = await waited
    expect(got?.hash).not.toBe(first?.hash)
    const before = reads.count
    expect(await policyFeed.waitForChange(workloadId, got?.hash, 0, never)).toBeUndefined()
    expect(reads.count, 'asked again with the policy it was woken with: no read').toBe(before)
    // closed (the server closing): the watch ends at once, and the memory with it
    policyFeed.close()
    expect(await policyFeed.waitForChange(workloadId, got?.hash, 0, never)).toBeUndefined()
    expect(reads.count, 'asked again after the close: read').toBe(before + 1)
  })

  // The read is held on PostgreSQL only: SQLite has one connection, and a held read holds it, so
  // the change could not be written meanwhile. The code under test is the same on both.
  if (dialect === 'postgres')
    it('wakes a waiter for a change made while its first read was on its way', async () => {
      const workloadId = await activate(s, 'race-1')
      const held = new HeldRead()
      const heldDb = s.db.withPlugin(held)
      const { hostPolicies, policyFeed } = hostPolicyServices(heldDb)
      await hostPolicies.recompute(1)
      const known = (await storedPolicy(heldDb, workloadId))?.hash
      expect(known).toEqual(expect.any(String))

      await enforce(s, workloadId)
      held.arm()
      const waited = policyFeed.waitForChange(workloadId, known, 4000, never)
      await expect.poll(() => held.holding).toBe(true)
      expect(await hostPolicies.recompute(1), 'the change gives the host a new policy').toBe(1)
      held.release()
      const got = await waited
      expect(got, 'woken by the change, not ended by the wait running out').toBeDefined()
      expect(got?.hash).not.toBe(known)
    })
})
