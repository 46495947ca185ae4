import pg from 'pg'

/** What the change feed needs of the store: a call whenever another writer may have changed it. */
export interface StoreChanges {
  /** `onChange` runs on each notification, and once more after each (re)connection. */
  subscribe(onChange: () => void): () => void
  close(): Promise<void>
}

/** Told of every write to host_policies when it commits (a trigger, see the migrations). */
export const HOST_POLICIES_CHANNEL = 'palisade_host_policies'

const BACKOFF = { firstMs: 100, maxMs: 5000 } as const

/**
 * PostgreSQL notifications on one channel, over a connection of their own (LISTEN holds a
 * connection; a pooled one would be handed to queries). Connected at the first subscriber; a
 * lost connection (the database restarted, a network cut, an administrator's kill) is opened
 * again with back-off, and the subscribers are told once it is back, since what changed while
 * it was away was announced to no one.
 */
export class PgNotifications implements StoreChanges {
  readonly #subscribers = new Set<() => void>()
  #client: pg.Client | undefined
  #connecting = false
  #retry: NodeJS.Timeout | undefined
  #backoffMs: number = BACKOFF.firstMs
  #closed = false

  constructor(
    private readonly url: string,
    private readonly channel: string,
    private readonly log: (line: Record<string, unknown>) => void = () => undefined,
  ) {
    if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error(`not a channel name: ${channel}`)
  }

  /** Whether the LISTEN connection is up. */
  get listening(): boolean {
    return this.#client !== undefined
  }

  subscribe(onChange: () => void): () => void {
    this.#subscribers.add(onChange)
    if (!this.#client && !this.#connecting && !this.#retry) void this.#connect()
    return () => this.#subscribers.delete(onChange)
  }

  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#retry)
    const client = this.#client
    this.#client = undefined
    await client?.end().catch(() => undefined)
  }

  #tell(): void {
    for (const s of this.#subscribers) s()
  }

  async #connect(): Promise<void> {
    this.#connecting = true
    const client = new pg.Client({ connectionString: this.url })
    let lost = false
    const onLost = (e?: Error) => {
      if (lost) return
      lost = true
      if (this.#client === client) this.#client = undefined
      void client.end().catch(() => undefined)
      if (this.#closed) return
      this.log({
        msg: 'the LISTEN connection to PostgreSQL was lost; reconnecting',
        error: e?.message,
      })
      this.#retryLater()
    }
    // Without a listener, an error on an idle client ends the process.
    client.on('error', onLost)
    client.on('end', () => onLost())
    client.on('notification', () => this.#tell())
    try {
      await client.connect()
      await client.query(`LISTEN ${this.channel}`)
    } catch (e) {
      this.#connecting = false
      onLost(e as Error)
      if (!this.#closed) this.#retryLater()
      return
    }
    this.#connecting = false
    if (this.#closed || lost) {
      await client.end().catch(() => undefined)
      if (!this.#closed) this.#retryLater()
      return
    }
    this.#client = client
    this.#backoffMs = BACKOFF.firstMs
    this.#tell()
  }

  #retryLater(): void {
    if (this.#retry || this.#connecting) return
    this.#retry = setTimeout(() => {
      this.#retry = undefined
      void this.#connect()
    }, this.#backoffMs)
    this.#backoffMs = Math.min(BACKOFF.maxMs, this.#backoffMs * 2)
  }
}
