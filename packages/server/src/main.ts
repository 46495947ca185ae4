import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import { buildApp } from './app.js'
import { bootstrapOrg } from './bootstrap.js'
import { clusterCa, readClusterSecret } from './cluster-ca.js'
import type { Database } from './db/schema.js'
import { openDb } from './db/open.js'
import { hostPolicyServices } from './host-policy/services.js'
import { AsyncJobs } from './http.js'
import { checkHeartbeats } from './liveness.js'
import type { FlowRetention } from './stores/flows.js'
import { prepareFlowPartitions } from './stores/flow-partitions.js'
import { DEFAULT_FLOW_RETENTION, pruneFlows } from './stores/flows.js'
import { pruneEvents } from './stores/events.js'
import { pruneJobs } from './stores/jobs.js'
import type { ServerTls } from './tls.js'
import { ensureTls, ensureTlsFromCa, tlsFromFiles } from './tls.js'

export interface ServerOptions {
  /** HOST:PORT (default 127.0.0.1:8443). */
  readonly listen: string
  readonly dataDir: string
  /** `postgres://...` for PostgreSQL; default: SQLite in the data dir. */
  readonly database?: string
  readonly tls: 'auto' | 'off'
  /** Certificates the operator made, used instead of those `tls: 'auto'` makes. */
  readonly tlsFiles?: { readonly cert: string; readonly key: string; readonly ca: string }
  /**
   * A file with the secret every server of a cluster is given: the CA is kept in the database,
   * its key sealed with it, and each server's certificate is issued by that one CA.
   */
  readonly clusterSecretFile?: string
  readonly log?: (line: Record<string, unknown>) => void
  /** API requests per minute per user (default 500, the vendor's limit). */
  readonly ratePerMinute?: number
  /** Agent activation attempts per minute per address (default 20). */
  readonly activationsPerMinute?: number
  /** How long and how many flow summaries are kept (default 30 days, 10,000,000). */
  readonly flowRetention?: Partial<FlowRetention>
  /** The agent package the server offers (default: the repository's dist/). */
  readonly agentDir?: string
}

export interface RunningServer {
  readonly app: FastifyInstance
  readonly url: string
  readonly bootstrapFile: string
  close(): Promise<void>
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(listen)
  const port = Number(m?.[2])
  if (!m || !m[1] || !Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`--listen must be HOST:PORT (for example 127.0.0.1:8443), not "${listen}"`)
  return { host: m[1], port }
}

/** The server's certificate: the operator's, the cluster's CA's, its own CA's, or none. */
async function serverTls(
  o: ServerOptions,
  db: Kysely<Database>,
  dataDir: string,
  host: string,
  /** Given when other servers may share the database: a CA of this server alone is worth a word. */
  warn: ((line: Record<string, unknown>) => void) | undefined,
): Promise<ServerTls | undefined> {
  if (o.tls === 'off') return undefined
  if (o.tlsFiles) return tlsFromFiles(o.tlsFiles)
  if (o.clusterSecretFile) {
    const ca = await clusterCa(db, await readClusterSecret(o.clusterSecretFile))
    return ensureTlsFromCa(dataDir, host, ca)
  }
  warn?.({
    msg: "this server's CA is its own (in the data dir): agents cannot fail over to another server on this database; give every server --cluster-secret-file, or --tls-cert/--tls-key/--tls-ca",
  })
  return ensureTls(dataDir, host)
}

/**
 * Starts the policy server: store, TLS, first-start bootstrap (org 1, an admin user and an API
 * key in `bootstrap.json`, mode 0600), host policies for every managed workload, the API.
 */
export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const log = o.log ?? (() => undefined)
  const { host, port } = parseListen(o.listen)
  const dataDir = resolve(o.dataDir)
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  // It holds the store, the CA's key and the bootstrap secret: the server's user's alone, even
  // when it was made by someone else first.
  await chmod(dataDir, 0o700)
  const { db, dialect, describe, writeLanes, changes } = await openDb(o.database, dataDir, log)
  const tls = await serverTls(o, db, dataDir, host, dialect === 'postgres' ? log : undefined)
  const scheme = tls ? 'https' : 'http'
  const { hostPolicies, policyFeed } = hostPolicyServices(db, changes)
  let bound = { address: host, port }
  const app = await buildApp(
    {
      db,
      hostPolicies,
      policyFeed,
      jobs: new AsyncJobs(db),
      writeLanes,
      agentEndpoint: () => bound,
      ...(tls && { caCertFile: tls.caCert }),
      ...(o.agentDir !== undefined && { agentDir: resolve(o.agentDir) }),
    },
    // Structured JSON logs (pino) of warnings and errors, such as a request that failed inside.
    {
      logger: { level: 'warn' },
      ...(o.ratePerMinute !== undefined && { ratePerMinute: o.ratePerMinute }),
      ...(o.activationsPerMinute !== undefined && { activationsPerMinute: o.activationsPerMinute }),
      ...(tls && { https: { key: tls.keyPem, cert: tls.certPem } }),
    },
  )
  // Every agent reconnects at once after a restart: a short accept queue would drop their
  // connections and leave them waiting on TCP's retry timers (the kernel caps it at somaxconn).
  await app.listen({ host, port, backlog: 65535 })
  const addr = app.server.address()
  if (addr && typeof addr === 'object')
    bound = { address: host === '0.0.0.0' || host === '::' ? host : addr.address, port: addr.port }
  const url = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${bound.port}`
  const bootstrapFile = join(dataDir, 'bootstrap.json')
  const created = await bootstrapOrg(db)
  if (created) {
    await writeFile(
      bootstrapFile,
      `${JSON.stringify({ org_id: created.org_id, api_user: created.api_user, api_secret: created.api_secret, username: created.username, password: created.password, ca_cert: tls?.caCert ?? null, url }, null, 2)}\n`,
      { mode: 0o600 },
    )
    log({
      msg: 'first start: org 1, the admin user and an API key are in the bootstrap file',
      bootstrapFile,
    })
  }
  await hostPolicies.recompute(1)
  const retention = { ...DEFAULT_FLOW_RETENTION, ...o.flowRetention }
  await prepareFlowPartitions(db, new Date())
  const housekeeping = async () => {
    await prepareFlowPartitions(db, new Date()).catch((e: Error) =>
      log({ msg: 'making flow partitions failed', error: e.message }),
    )
    await checkHeartbeats(db, new Date()).catch((e: Error) =>
      log({ msg: 'heartbeat check failed', error: e.message }),
    )
    await pruneFlows(db, retention, new Date()).then(
      (n) => n > 0 && log({ msg: 'flow retention', deleted: n }),
      (e: Error) => log({ msg: 'flow retention failed', error: e.message }),
    )
    await pruneEvents(db, Date.now()).then(
      (n) => n > 0 && log({ msg: 'event retention', deleted: n }),
      (e: Error) => log({ msg: 'event retention failed', error: e.message }),
    )
    await pruneJobs(db, Date.now()).then(
      (n) => n > 0 && log({ msg: 'async job retention', deleted: n }),
      (e: Error) => log({ msg: 'async job retention failed', error: e.message }),
    )
  }
  const liveness = setInterval(() => void housekeeping(), 60_000)
  log({ msg: 'server listening', url, database: describe, tls: tls ? tls.caCert : 'off' })
  return {
    app,
    url,
    bootstrapFile,
    close: async () => {
      clearInterval(liveness)
      await app.close()
      await hostPolicies.idle()
      policyFeed.close()
      await changes?.close()
      await db.destroy()
    },
  }
}
