import type { Kysely, Transaction } from 'kysely'
import type { Database } from './db/schema.js'

type Write = (tx: Transaction<Database>) => Promise<unknown>

/**
 * Group commit: small writes that arrive while a commit is in progress share the next
 * transaction, so a thousand agents reporting at once cost a few commits (and fsyncs), not a
 * thousand. Each caller's promise settles when its own write is durable; a write that fails
 * fails alone (the batch is retried one write at a time).
 */
export class GroupCommit {
  readonly #db: Kysely<Database>
  #queue: { write: Write; resolve: () => void; reject: (e: unknown) => void }[] = []
  #running = false

  constructor(
    db: Kysely<Database>,
    private readonly maxBatch = 500,
  ) {
    this.#db = db
  }

  run(write: Write): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ write, resolve, reject })
      if (this.#running) return
      this.#running = true
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
      this.#running = false
    }
  }
}
