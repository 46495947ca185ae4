import { appendFile, open, readFile, stat } from 'node:fs/promises'
import { writeAtomic } from './state-dir.js'

export interface OutboxOptions {
  /** The file grows to this size at most; then the oldest records are dropped (default 16 MiB). */
  readonly maxBytes?: number
}

/**
 * Records waiting for the server, one JSON line each, in a file that survives restarts. An upload
 * sends from a persisted offset and moves it only once the server stored the batch, and the
 * server ignores records it already has (they carry uuids): nothing is lost or counted twice by
 * a crash. While the server is away the file is bounded: past `maxBytes` the oldest records are
 * dropped and counted in `<file>.dropped`.
 */
export class Outbox {
  readonly #path: string
  readonly #offsetPath: string
  readonly #droppedPath: string
  readonly #maxBytes: number
  /** Appends, compaction and offset moves take turns. */
  #turn: Promise<unknown> = Promise.resolve()
  #uploading = false

  constructor(path: string, offsetPath: string, o: OutboxOptions = {}) {
    this.#path = path
    this.#offsetPath = offsetPath
    this.#droppedPath = `${path}.dropped`
    this.#maxBytes = o.maxBytes ?? 16 * 1024 * 1024
  }

  #serial<T>(f: () => Promise<T>): Promise<T> {
    const next = this.#turn.then(f, f)
    this.#turn = next.catch(() => undefined)
    return next
  }

  async append(records: readonly unknown[]): Promise<void> {
    if (records.length === 0) return
    const text = records.map((r) => `${JSON.stringify(r)}\n`).join('')
    await this.#serial(async () => {
      await appendFile(this.#path, text, { mode: 0o600 })
      const size = (await stat(this.#path)).size
      if (size > this.#maxBytes) await this.#compact()
    })
  }

  /** How many records were dropped, over the file's life, because the server was away too long. */
  async dropped(): Promise<number> {
    return Number((await readFile(this.#droppedPath, 'utf8').catch(() => '0')).trim()) || 0
  }

  async #offset(): Promise<number> {
    return Number((await readFile(this.#offsetPath, 'utf8').catch(() => '0')).trim()) || 0
  }

  /** Keeps the newest unsent records that fit in half the bound; counts the rest as dropped. */
  async #compact(): Promise<void> {
    const text = await readFile(this.#path, 'utf8')
    const unsent = text.slice(Math.min(await this.#offset(), text.length))
    const lines = unsent.split('\n').filter(Boolean)
    let keep = lines.length
    let bytes = 0
    while (keep > 0) {
      const b = Buffer.byteLength(lines[keep - 1] ?? '') + 1
      if (bytes + b > this.#maxBytes / 2) break
      bytes += b
      keep--
    }
    const dropped = keep
    await writeAtomic(
      this.#path,
      lines
        .slice(keep)
        .map((l) => `${l}\n`)
        .join(''),
    )
    await writeAtomic(this.#offsetPath, '0\n')
    await writeAtomic(this.#droppedPath, `${(await this.dropped()) + dropped}\n`)
  }

  /**
   * Sends what is past the offset in batches of at most `maxBatch`; `send` throws when the server
   * did not store a batch, and the offset stays where it was.
   */
  async upload(send: (batch: unknown[]) => Promise<void>, maxBatch: number): Promise<void> {
    if (this.#uploading) return
    this.#uploading = true
    try {
      for (;;) {
        const batch = await this.#serial(() => this.#read(maxBatch))
        if (!batch) return
        await send(batch.records)
        await this.#serial(async () => {
          // A compaction during the send rewrote the file: what was sent is gone from it anyway.
          if ((await this.#offset()) === batch.offset)
            await writeAtomic(this.#offsetPath, `${batch.offset + batch.bytes}\n`)
        })
      }
    } finally {
      this.#uploading = false
    }
  }

  async #read(
    maxBatch: number,
  ): Promise<{ offset: number; bytes: number; records: unknown[] } | undefined> {
    const offset = await this.#offset()
    const size = (await stat(this.#path).catch(() => undefined))?.size ?? 0
    if (size <= offset) return undefined
    const fh = await open(this.#path, 'r')
    try {
      const buf = Buffer.alloc(Math.min(size - offset, 4 * 1024 * 1024))
      await fh.read(buf, 0, buf.length, offset)
      const text = buf.toString()
      const lines = text
        .slice(0, text.lastIndexOf('\n') + 1)
        .split('\n')
        .filter(Boolean)
        .slice(0, maxBatch)
      if (lines.length === 0) return undefined
      return {
        offset,
        bytes: Buffer.byteLength(lines.map((l) => `${l}\n`).join('')),
        records: lines.map((l) => JSON.parse(l) as unknown),
      }
    } finally {
      await fh.close()
    }
  }
}
