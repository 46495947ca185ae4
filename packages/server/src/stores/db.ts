import type { Kysely, Transaction } from 'kysely'
import type { Database } from '../db/schema.js'

/** The store, or a transaction on it: every store function runs in either. */
export type Db = Kysely<Database> | Transaction<Database>
