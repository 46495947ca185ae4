/**
 * Which errors mean the store is away (PostgreSQL restarting, unreachable or failing over; a
 * SQLite file locked by another process) rather than that a request was wrong: those requests
 * get a 503 the client can retry, not a 500. Pure.
 */

/** PostgreSQL's SQLSTATEs for a server shutting down, starting up or refusing connections. */
const PG_AWAY = new Set([
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, shutting down, in recovery)
  '08000', // connection_exception
  '08001', // sqlclient_unable_to_establish_sqlconnection
  '08003', // connection_does_not_exist
  '08006', // connection_failure
  '53300', // too_many_connections
])

/** Socket errors of a connection that could not be made or was cut. */
const NET_AWAY = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOENT',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
])

/** pg's messages for a connection that ended or never came (these errors carry no code). */
const PG_MESSAGES =
  /^(Connection terminated|Client has encountered a connection error|Client was closed|timeout exceeded when trying to connect|Connection terminated due to connection timeout)/

/**
 * Why the store is unavailable, if `err` (or its cause) says it is: a sentence for the 503;
 * undefined for any other error.
 */
export function storeUnavailable(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED')
      return 'the database file is locked by another process; retry shortly, and stop whatever else holds palisade.db open'
    if (typeof code === 'string' && (PG_AWAY.has(code) || NET_AWAY.has(code)))
      return `the database is unavailable (${code}: ${e.message}); retry shortly`
    if (PG_MESSAGES.test(e.message))
      return `the database is unavailable (${e.message}); retry shortly`
  }
  return undefined
}
