import BetterSqlite3 from 'better-sqlite3'
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely'
import pg from 'pg'
import { chmodSync, closeSync, existsSync, openSync } from 'node:fs'
import { join } from 'node:path'
import type { Database } from './schema.js'
import { migrationProvider } from './migrations.js'
import type { StoreChanges } from './pg-notifications.js'
import { HOST_POLICIES_CHANNEL, PgNotifications } from './pg-notifications.js'

const POOL_SIZE = 10
/**
 * How long a request waits for a PostgreSQL connection, and SQLite for a lock another process
 * holds, before it gets a 503 (see unavailable.ts). SQLite waits on the event loop, so this is
 * also how long such a lock can stall the whole server.
 */
const CONNECT_TIMEOUT_MS = 2000
const SQLITE_BUSY_MS = 250

export interface OpenedDb {
  readonly db: Kysely<Database>
  readonly dialect: 'sqlite' | 'postgres'
  readonly describe: string
  /**
   * How many write transactions may run at once: SQLite has one connection; PostgreSQL a pool
   * (two connections are left for reads), and it groups the flushes of concurrent commits itself.
   */
  readonly writeLanes: number
  /** PostgreSQL: what other servers on the database wrote, as it commits (LISTEN/NOTIFY). */
  readonly changes?: StoreChanges
}

/**
 * Opens the store: `postgres://...` selects PostgreSQL; anything else is a SQLite file in the
 * data dir (WAL, synchronous FULL: a committed write survives a power cut; the file and its
 * WAL readable by the server's user only). Runs migrations. `log` hears of connections lost.
 */
export async function openDb(
  database: string | undefined,
  dataDir: string,
  log: (line: Record<string, unknown>) => void = () => undefined,
): Promise<OpenedDb> {
  let opened: OpenedDb
  if (database?.startsWith('postgres://') || database?.startsWith('postgresql://')) {
    const pool = new pg.Pool({
      connectionString: database,
      max: POOL_SIZE,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    })
    // A connection the database ends (a restart, a failover) is an error event, idle in the pool
    // or held by a request; unheard, it would end the process. The request holding it fails
    // with a 503; the pool opens new connections when the database is back.
    const lost = (e: Error) => log({ msg: 'database connection lost', error: e.message })
    pool.on('error', lost)
    pool.on('connect', (client) => client.on('error', lost))
    opened = {
      writeLanes: POOL_SIZE - 2,
      db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }),
      dialect: 'postgres',
      describe: database.replace(/:[^:@/]*@/, ':***@'),
      changes: new PgNotifications(database, HOST_POLICIES_CHANNEL, log),
    }
  } else {
    const file = database ?? join(dataDir, 'palisade.db')
    ownerOnly(file)
    const sqlite = new BetterSqlite3(file)
    sqlite.pragma('journal_mode = WAL')
    sqlite.pragma('synchronous = FULL')
    sqlite.pragma('foreign_keys = ON')
    sqlite.pragma(`busy_timeout = ${SQLITE_BUSY_MS}`)
    // SQLite makes the WAL and shared-memory files with the database file's mode; ones left by
    // an older server keep theirs.
    for (const f of [`${file}-wal`, `${file}-shm`]) if (existsSync(f)) chmodSync(f, 0o600)
    opened = {
      writeLanes: 1,
      db: new Kysely<Database>({
        dialect: new SqliteDialect({ database: withStatementCache(sqlite) }),
      }),
      dialect: 'sqlite',
      describe: file,
    }
  }
  const { error, results } = await new Migrator({
    db: opened.db,
    provider: migrationProvider(opened.dialect),
  }).migrateToLatest()
  const failed = results?.find((r) => r.status === 'Error')
  if (error)
    throw new Error(
      `migrating the database ${opened.describe} failed${failed ? ` at ${failed.migrationName}` : ''}: ${String((error as Error).message ?? error)}`,
      { cause: error },
    )
  return opened
}

/** Creates the database file mode 0600, or makes an existing one so. */
function ownerOnly(file: string): void {
  closeSync(openSync(file, 'a', 0o600))
  chmodSync(file, 0o600)
}

/**
 * Kysely prepares every query anew; a statement kept by its text skips SQLite's parse and plan,
 * which took a tenth of the server's time with thousands of agents reporting. Statements run one
 * at a time on this one connection, so one object per text is safe. Bounded: queries built with
 * a varying number of parameters make new texts.
 */
function withStatementCache(sqlite: BetterSqlite3.Database, max = 1000) {
  const cache = new Map<string, BetterSqlite3.Statement>()
  return {
    close: () => sqlite.close(),
    prepare: (text: string) => {
      let stmt = cache.get(text)
      if (stmt) {
        // most recently used last, so the oldest is the first to go
        cache.delete(text)
      } else {
        stmt = sqlite.prepare(text)
        if (cache.size >= max) cache.delete(cache.keys().next().value ?? '')
      }
      cache.set(text, stmt)
      return stmt
    },
  }
}
