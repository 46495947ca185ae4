import type { Kysely, Transaction } from 'kysely'
import type { Database } from './db/schema.js'

type Write = (tx: Transaction<Database>) => Promise<unknown>

/**
 * Group commit: small writes that arrive while a commit is in progress share the next
 * transaction, so a thousand agents reporting at once cost a few commits (and fsyncs), not a
 * thousand. Each caller's promise settles when its own write is durable; a write that fails
 * fails alone (the batch is retried one write at a time). `lanes` batches may be in flight at
 * once: one for SQLite's single connection, more where the store has a pool.
 */
export class GroupCommit {
  readonly #db: Kysely<Database>
  #queue: { write: Write; resolve: () => void; reject: (e: unknown) => void }[] = []
  #busy = 0

  constructor(
    db: Kysely<Database>,
    private readonly maxBatch = 500,
    private readonly lanes = 1,
  ) {
    this.#db = db
  }

  run(write: Write): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ write, resolve, reject })
      if (this.#busy >= this.lanes) return
      this.#busy++
      // Not at once: the other requests read in this same turn of the event loop join the batch.
      setImmediate(() => void this.#drain())
    })
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.maxBatch)
        try {
          await this.#db.transaction().execute(async (tx) => {
            for (const b of batch) await b.write(tx)
          })
          for (const b of batch) b.resolve()
        } catch {
          for (const b of batch)
            await this.#db
              .transaction()
              .execute(async (tx) => {
                await b.write(tx)
              })
              .then(b.resolve, b.reject)
        }
      }
    } finally {
      this.#busy--
    }
  }
}
