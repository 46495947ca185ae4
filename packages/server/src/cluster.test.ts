import { X509Certificate } from 'node:crypto'
import { request } from 'node:https'
import type { TLSSocket } from 'node:tls'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { clusterCa, seal, unseal } from './cluster-ca.js'
import type { OpenedDb } from './db/open.js'
import { openDb } from './db/open.js'
import { hostPolicyServices } from './host-policy/services.js'
import type { TestPostgres } from './postgres.fixture.js'
import { startTestPostgres } from './postgres.fixture.js'
import { storedPolicy } from './stores/host-policies.js'
import type { TestServer } from './test-server.fixture.js'
import { testServer } from './test-server.fixture.js'
import { ensureTls, ensureTlsFromCa } from './tls.js'
import { startServer } from './main.js'

const SECRET = 'a'.repeat(64)
const never = new AbortController().signal

describe('the cluster secret seals the CA key', () => {
  it('opens with the same secret only, and refuses a changed text', async () => {
    const sealed = await seal('-----BEGIN PRIVATE KEY-----\nxyz\n', SECRET)
    expect(sealed).not.toContain('PRIVATE KEY')
    expect(await unseal(sealed, SECRET)).toBe('-----BEGIN PRIVATE KEY-----\nxyz\n')
    await expect(unseal(sealed, 'b'.repeat(64))).rejects.toThrow(/same --cluster-secret-file/)
    const parts = sealed.split('$')
    const body = Buffer.from(parts[5] as string, 'base64')
    body[0] = (body[0] as number) ^ 1
    parts[5] = body.toString('base64')
    await expect(unseal(parts.join('$'), SECRET)).rejects.toThrow(/does not open/)
  })
})

describe("the operator's certificates", () => {
  it('are served as given (--tls-cert, --tls-key, --tls-ca), and nothing is made', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'palisade-tls-files-'))
    try {
      await mkdir(join(dir, 'pki'))
      const made = await ensureTls(join(dir, 'pki'), '127.0.0.1')
      const pki = (f: string) => join(dir, 'pki', f)
      const caPem = await readFile(pki('ca.crt'), 'utf8')
      const server = await startServer({
        listen: '127.0.0.1:0',
        dataDir: join(dir, 'data'),
        tls: 'auto',
        tlsFiles: { cert: pki('server.crt'), key: pki('server.key'), ca: pki('ca.crt') },
      })
      try {
        const served = await new Promise<string>((resolve, reject) => {
          const req = request(`${server.url}/api/v2/product_version`, { ca: caPem }, (res) => {
            res.resume()
            resolve((res.socket as TLSSocket).getPeerX509Certificate()?.toString() ?? '')
          })
          req.on('error', reject)
          req.end()
        })
        expect(served).toBe(new X509Certificate(made.certPem).toString())
        const boot = JSON.parse(await readFile(server.bootstrapFile, 'utf8')) as { ca_cert: string }
        expect(boot.ca_cert).toBe(pki('ca.crt'))
        for (const f of ['ca.crt', 'ca.key', 'server.crt', 'server.key'])
          await expect(readFile(join(dir, 'data', f)), f).rejects.toThrow(/ENOENT/)
      } finally {
        await server.close()
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('two servers on one PostgreSQL', () => {
  let pgServer: TestPostgres
  let url = ''
  let dir = ''
  const opened: OpenedDb[] = []
  const open = async () => {
    const o = await openDb(url, dir)
    opened.push(o)
    return o
  }

  beforeAll(async () => {
    pgServer = await startTestPostgres()
    url = await pgServer.freshDatabase()
    dir = await mkdtemp(join(tmpdir(), 'palisade-cluster-'))
  })
  afterEach(() => {
    vi.useRealTimers()
  })
  afterAll(async () => {
    for (const o of opened) {
      await o.changes?.close()
      await o.db.destroy()
    }
    await pgServer?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('share one CA made once by servers starting together, its key sealed in the database', async () => {
    const [a, b] = await Promise.all([open(), open()])
    const [caA, caB] = await Promise.all([clusterCa(a.db, SECRET), clusterCa(b.db, SECRET)])
    expect(caA.certPem).toContain('BEGIN CERTIFICATE')
    expect(caB).toEqual(caA)
    const rows = await a.db.selectFrom('cluster_ca').selectAll().execute()
    expect(rows).toHaveLength(1)
    expect(rows[0]?.key_sealed).not.toContain('PRIVATE KEY')
    await expect(clusterCa(b.db, 'c'.repeat(64))).rejects.toThrow(/does not open/)

    // each server's own certificate, for its own address, issued by the one CA
    const ca = new X509Certificate(caA.certPem)
    for (const [name, ip] of [
      ['a', '198.18.0.10'],
      ['b', '198.18.0.11'],
    ] as const) {
      const dataDir = await mkdtemp(join(dir, `${name}-`))
      const tls = await ensureTlsFromCa(dataDir, ip, caA)
      const cert = new X509Certificate(tls.certPem)
      expect(cert.verify(ca.publicKey), `${name}'s certificate is the CA's`).toBe(true)
      expect(cert.checkIP(ip)).toBe(ip)
      expect(await readFile(tls.caCert, 'utf8')).toBe(caA.certPem)
      // the CA key is not left in the data dir
      await expect(readFile(join(dataDir, 'ca.key'))).rejects.toThrow(/ENOENT/)
    }
  })

  /** A host with a stored host policy, through server `s`; its workload id. */
  async function pairedHost(s: TestServer, hostname: string): Promise<string> {
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
    await expect.poll(async () => (await storedPolicy(s.db, id))?.hash).toEqual(expect.any(String))
    return id
  }

  /** A change through server A (its own services) that gives the host a new policy. */
  async function changeThroughA(a: TestServer, workloadId: string, mode: string): Promise<void> {
    await a.db
      .updateTable('workloads')
      .set({ enforcement_mode: mode })
      .where('id', '=', workloadId)
      .execute()
    expect(await hostPolicyServices(a.db).hostPolicies.recompute(1)).toBe(1)
  }

  it("wake a long-poll on one server at the other's NOTIFY, with no polling, and again after the LISTEN connection is lost", async () => {
    const dbUrl = await pgServer.freshDatabase()
    const a = await testServer(dbUrl)
    const admin = new pg.Client({ connectionString: dbUrl })
    await admin.connect()
    const listener = async () =>
      (
        await admin.query<{ pid: number }>(
          `select pid from pg_stat_activity where datname = current_database() and query like 'LISTEN%'`,
        )
      ).rows.map((r) => r.pid)
    try {
      const id = await pairedHost(a, 'notified-1')
      const b = await openDb(dbUrl, dir)
      opened.push(b)
      // The store watch's timer never fires: only a notification can wake the waiter.
      vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] })
      const feed = hostPolicyServices(b.db, b.changes).policyFeed
      const known = (await storedPolicy(b.db, id))?.hash
      const first = feed.waitForChange(id, known, 60_000, never)
      await expect.poll(listener).toHaveLength(1)
      const [before] = await listener()
      await changeThroughA(a, id, 'full')
      const got = await first
      expect(got, 'woken by the notification, not ended by the wait').toBeDefined()
      expect(got?.hash).not.toBe(known)

      // An administrator ends the LISTEN connection: it comes back and hears the next change.
      await admin.query('select pg_terminate_backend($1)', [before])
      const second = feed.waitForChange(id, got?.hash, 60_000, never)
      await expect
        .poll(async () => (await listener()).filter((p) => p !== before), { timeout: 10_000 })
        .toHaveLength(1)
      await changeThroughA(a, id, 'selective')
      const again = await second
      expect(again, 'woken after the reconnection').toBeDefined()
      expect(again?.hash).not.toBe(got?.hash)
    } finally {
      vi.useRealTimers()
      await admin.end()
      await a.close()
    }
  })
})
