import type { Kysely, Transaction } from 'kysely'
import type { Database } from './db/schema.js'

/** Writes a batch of items in one transaction; resolves with one result per item, in order. */
export type BatchWrite<I, R> = (tx: Transaction<Database>, items: readonly I[]) => Promise<R[]>

/**
 * Group commit: small writes that arrive while a commit is in progress share the next
 * transaction, and `write` may store them in one statement, so a thousand agents reporting at
 * once cost a few commits (and fsyncs), not a thousand. Each caller's promise settles when its
 * own item is durable; an item that fails fails alone (the batch is retried one item at a time).
 * `lanes` batches may be in flight at once: one for SQLite's single connection, more where the
 * store has a pool.
 */
export class GroupCommit<I, R> {
  readonly #db: Kysely<Database>
  readonly #write: BatchWrite<I, R>
  #queue: { item: I; resolve: (r: R) => void; reject: (e: unknown) => void }[] = []
  #busy = 0

  constructor(
    db: Kysely<Database>,
    write: BatchWrite<I, R>,
    private readonly maxBatch = 500,
    private readonly lanes = 1,
  ) {
    this.#db = db
    this.#write = write
  }

  /** Resolves with the item's result once its transaction has committed. */
  run(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject })
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
          const results = await this.#db.transaction().execute((tx) =>
            this.#write(
              tx,
              batch.map((b) => b.item),
            ),
          )
          batch.forEach((b, i) => b.resolve(results[i] as R))
        } catch {
          for (const b of batch)
            await this.#db
              .transaction()
              .execute((tx) => this.#write(tx, [b.item]))
              .then(([r]) => b.resolve(r as R), b.reject)
        }
      }
    } finally {
      this.#busy--
    }
  }
}
