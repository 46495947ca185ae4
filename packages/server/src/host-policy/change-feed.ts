import { EventEmitter } from 'node:events'
import type { Kysely } from 'kysely'
import type { StoreChanges } from '../db/pg-notifications.js'
import type { Database } from '../db/schema.js'
import type { StoredPolicy } from '../stores/host-policies.js'
import { policiesChangedSince, storedPolicy } from '../stores/host-policies.js'

/** How far back the store watch looks, for clocks of servers sharing a database. */
const STORE_WATCH_WINDOW_MS = 5000
/** How often the store is looked at: no notifications (SQLite), and with them as a safety net. */
const POLL_MS = { alone: 500, safetyNet: 10_000 } as const
/**
 * How long the store watch (and so the memory of hashes) outlives the last waiter: a change that
 * wakes a whole fleet at once leaves no one waiting, and each agent asks again moments later with
 * the policy it was woken with, which memory then answers without a read each.
 */
const WATCH_OUTLIVES_WAITERS_MS = 30_000

/** A host policy just written: announced to its waiters with the news, so none reads it. */
export interface PolicyNews {
  readonly workload_id: string
  readonly hash: string
  readonly policy: string
  readonly updated_at: string
}

/**
 * The long-polls of agents waiting for their host policy to change, in this process: woken at
 * once by the changes this process writes (`announce`), and those another server on the same
 * database writes by the store watch: at PostgreSQL's notification (`changes`), or within half
 * a second without one (SQLite), or ended by a `kick`.
 */
export class HostPolicyFeed {
  readonly #hub = new EventEmitter()
  #waiters = 0
  #storeWatch: NodeJS.Timeout | undefined
  /** Ends the store watch once no one has waited for a while (see WATCH_OUTLIVES_WAITERS_MS). */
  #watchEnd: NodeJS.Timeout | undefined
  #unsubscribe: (() => void) | undefined
  /** When the last look at the store started: the next looks back from there. */
  #lookedAt = 0
  #looking = false
  #lookAgain = false
  /** When each host policy last changed, as the store said: a change is announced once. */
  readonly #seenChange = new Map<string, string>()
  /**
   * The hash of each host policy as last read or written here, while the store watch runs: an
   * idle agent asking again with the hash it has costs no read. An entry goes when the watch
   * says the policy changed, and all go when the watch stops (it would miss changes).
   */
  readonly #hashes = new Map<string, string>()
  /** Counts the changes seen: a read that began before one may be older than it, and is not kept. */
  #changesSeen = 0

  constructor(
    private readonly db: Kysely<Database>,
    private readonly changes?: StoreChanges,
  ) {
    this.#hub.setMaxListeners(0)
  }

  /** Long-polls waiting in this process. */
  get waiting(): number {
    return this.#waiters
  }

  /**
   * Wakes the waiters of host policies this process wrote, with the policy (no read each); the
   * store watch will not announce these writes a second time.
   */
  announce(news: readonly PolicyNews[]): void {
    for (const r of news) {
      this.#seenChange.set(r.workload_id, r.updated_at)
      this.#changesSeen++
      if (this.#storeWatch) this.#hashes.set(r.workload_id, r.hash)
      this.#hub.emit(`changed:${r.workload_id}`, { hash: r.hash, text: r.policy })
    }
  }

  /**
   * While anyone waits, the store is looked at for host policies another server on the same
   * database changed, one look for all waiters (not one per waiter), and they are announced like
   * our own.
   */
  #watchStore(): void {
    clearTimeout(this.#watchEnd)
    this.#watchEnd = undefined
    if (this.#storeWatch) return
    this.#lookedAt = Date.now()
    this.#unsubscribe = this.changes?.subscribe(() => this.#look())
    const every = this.changes ? POLL_MS.safetyNet : POLL_MS.alone
    // Open long-polls keep the process alive, not the watch (it may outlive them a while).
    this.#storeWatch = setInterval(() => this.#look(), every).unref()
  }

  /**
   * One look at what changed since the last look began, a few seconds more, so clocks a little
   * apart between servers lose nothing. Notifications that come during a look make one more.
   */
  #look(): void {
    if (this.#looking) {
      this.#lookAgain = true
      return
    }
    this.#looking = true
    const since = new Date(this.#lookedAt - STORE_WATCH_WINDOW_MS).toISOString()
    const startedAt = Date.now()
    void policiesChangedSince(this.db, since)
      .then(
        (rows) => {
          this.#lookedAt = startedAt
          for (const r of rows) {
            if (this.#seenChange.get(r.workload_id) === r.updated_at) continue
            this.#seenChange.set(r.workload_id, r.updated_at)
            this.#changesSeen++
            this.#hashes.delete(r.workload_id)
            this.#hub.emit(`changed:${r.workload_id}`)
          }
        },
        () => undefined,
      )
      .finally(() => {
        this.#looking = false
        if (this.#lookAgain && this.#storeWatch) {
          this.#lookAgain = false
          this.#look()
        }
      })
  }

  #unwatch(): void {
    if (--this.#waiters > 0) return
    this.#watchEnd = setTimeout(() => this.#endWatch(), WATCH_OUTLIVES_WAITERS_MS).unref()
  }

  #endWatch(): void {
    this.#watchEnd = undefined
    clearInterval(this.#storeWatch)
    this.#storeWatch = undefined
    this.#changesSeen++
    this.#hashes.clear()
    this.#unsubscribe?.()
    this.#unsubscribe = undefined
  }

  /**
   * Resolves with the host policy once its hash differs from `known`, or undefined after `ms`.
   * Changes made in this process wake the waiter at once; changes through another server on
   * the same database at its notification (see `#watchStore`).
   */
  async waitForChange(
    workloadId: string,
    known: string | undefined,
    ms: number,
    signal: AbortSignal,
  ): Promise<StoredPolicy | undefined> {
    // Listen before the first read: a change committed and announced while that read is in
    // flight would otherwise be missed (the store watch skips our own writes) until the wait
    // runs out. The wait starts once that read has answered, so `ms` 0 still reads once.
    return new Promise((resolve, reject) => {
      let settled = false
      let timer: NodeJS.Timeout | undefined
      const end = (settle: () => void) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        this.#unwatch()
        this.#hub.off(`changed:${workloadId}`, check)
        this.#hub.off(`kick:${workloadId}`, onAbort)
        signal.removeEventListener('abort', onAbort)
        settle()
      }
      const finish = (value: StoredPolicy | undefined) => end(() => resolve(value))
      const differs = (c: StoredPolicy | undefined) => c !== undefined && c.hash !== known
      // A failed read while waiting is left to the next announcement or the end of the wait.
      const check = (news?: StoredPolicy) => {
        if (news) {
          if (differs(news)) finish(news)
          return
        }
        storedPolicy(this.db, workloadId).then(
          (c) => differs(c) && finish(c),
          () => undefined,
        )
      }
      const onAbort = () => finish(undefined)
      this.#waiters++
      this.#watchStore()
      this.#hub.on(`changed:${workloadId}`, check)
      this.#hub.once(`kick:${workloadId}`, onAbort)
      signal.addEventListener('abort', onAbort)
      if (known !== undefined && this.#hashes.get(workloadId) === known) {
        timer = setTimeout(onAbort, ms)
        return
      }
      const seen = this.#changesSeen
      storedPolicy(this.db, workloadId).then(
        (c) => {
          if (c && this.#storeWatch && seen === this.#changesSeen)
            this.#hashes.set(workloadId, c.hash)
          if (differs(c)) finish(c)
          else if (!settled) timer = setTimeout(onAbort, ms)
        },
        (e: Error) => end(() => reject(e)),
      )
    })
  }

  /** Stops the store watch now, not when it would have outlived the last waiter (server close). */
  close(): void {
    clearTimeout(this.#watchEnd)
    if (this.#storeWatch) this.#endWatch()
  }

  /** Ends a waiting long-poll at once (the agent then asks again and learns, say, of an unpair). */
  kick(workloadId: string): void {
    this.#hub.emit(`kick:${workloadId}`)
  }
}
