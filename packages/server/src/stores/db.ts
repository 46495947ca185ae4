/**
 * The store: one query layer over SQLite and PostgreSQL, a module per resource in this folder.
 * Everything else reads and writes through them; each returns typed rows, its JSON columns read
 * once, here.
 *
 * - Every change made through the API writes its audit event (stores/events.ts) in the same
 *   transaction, with who did it and each changed field before and after.
 * - Secrets (passwords, API keys, agent tokens, activation codes, sessions) are stored only as
 *   hashes.
 */
import type { Kysely, Transaction } from 'kysely'
import { PostgresAdapter } from 'kysely'
import type { Database } from '../db/schema.js'

/** The store, or a transaction on it: every store function runs in either. */
export type Db = Kysely<Database> | Transaction<Database>

/** Whether the store is PostgreSQL: the few things done differently there ask this. */
export const isPostgres = (db: Db): boolean => db.getExecutor().adapter instanceof PostgresAdapter
