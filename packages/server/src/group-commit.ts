import type { Kysely, Transaction } from 'kysely'
import type { Database } from './db/schema.js'

type Write<T> = (tx: Transaction<Database>) => Promise<T>

/**
 * Group commit: small writes that arrive while a commit is in progress share the next
 * transaction, so a thousand agents reporting at once cost a few commits (and fsyncs), not a
 * thousand. Each caller's promise settles when its own write is durable; a write that fails
 * fails alone (the batch is retried one write at a time). `lanes` batches may be in flight at
 * once: one for SQLite's single connection, more where the store has a pool.
 */
export class GroupCommit {
  readonly #db: Kysely<Database>
  #queue: { write: Write<unknown>; resolve: (v: unknown) => void; reject: (e: unknown) => void }[] =
    []
  #busy = 0

  constructor(
    db: Kysely<Database>,
    private readonly maxBatch = 500,
    private readonly lanes = 1,
  ) {
    this.#db = db
  }

  /** Resolves with what `write` returned, once its transaction has committed. */
  run<T>(write: Write<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ write, resolve: resolve as (v: unknown) => void, reject })
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
          const results: unknown[] = []
          await this.#db.transaction().execute(async (tx) => {
            for (const b of batch) results.push(await b.write(tx))
          })
          batch.forEach((b, i) => b.resolve(results[i]))
        } catch {
          for (const b of batch)
            await this.#db
              .transaction()
              .execute((tx) => b.write(tx))
              .then(b.resolve, b.reject)
        }
      }
    } finally {
      this.#busy--
    }
  }
}
