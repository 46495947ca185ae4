import { EventEmitter } from 'node:events'
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import type { StoredPolicy } from '../stores/host-policies.js'
import { policiesChangedSince, storedPolicy } from '../stores/host-policies.js'

/** How far back the store watch looks, for clocks of servers sharing a database. */
const STORE_WATCH_WINDOW_MS = 5000

/** A host policy just written: announced to its waiters with the news, so none reads it. */
export interface PolicyNews {
  readonly workload_id: string
  readonly hash: string
  readonly policy: string
  readonly updated_at: string
}

/**
 * The long-polls of agents waiting for their host policy to change, in this process: woken at
 * once by the changes this process writes (`announce`), and within half a second by those
 * another server on the same database writes (the store watch), or ended by a `kick`.
 */
export class HostPolicyFeed {
  readonly #hub = new EventEmitter()
  #waiters = 0
  #storeWatch: NodeJS.Timeout | undefined
  /** When each host policy last changed, as the store said: a change is announced once. */
  readonly #seenChange = new Map<string, string>()

  constructor(private readonly db: Kysely<Database>) {
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
      this.#hub.emit(`changed:${r.workload_id}`, { hash: r.hash, text: r.policy })
    }
  }

  /**
   * One look at the store every half second for all waiters (not one per waiter): host policies
   * another server on the same database changed are announced like our own. The window reaches
   * back a few seconds, so clocks a little apart between servers lose nothing.
   */
  #watchStore(): void {
    if (this.#storeWatch) return
    this.#storeWatch = setInterval(() => {
      const since = new Date(Date.now() - STORE_WATCH_WINDOW_MS).toISOString()
      void policiesChangedSince(this.db, since).then(
        (rows) => {
          for (const r of rows) {
            if (this.#seenChange.get(r.workload_id) === r.updated_at) continue
            this.#seenChange.set(r.workload_id, r.updated_at)
            this.#hub.emit(`changed:${r.workload_id}`)
          }
        },
        () => undefined,
      )
    }, 500)
  }

  #unwatch(): void {
    if (--this.#waiters > 0) return
    clearInterval(this.#storeWatch)
    this.#storeWatch = undefined
  }

  /**
   * Resolves with the host policy once its hash differs from `known`, or undefined after `ms`.
   * Changes made in this process wake the waiter at once; changes through another server on
   * the same database within half a second (see `#watchStore`).
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
      storedPolicy(this.db, workloadId).then(
        (c) => {
          if (differs(c)) finish(c)
          else if (!settled) timer = setTimeout(onAbort, ms)
        },
        (e: Error) => end(() => reject(e)),
      )
    })
  }

  /** Ends a waiting long-poll at once (the agent then asks again and learns, say, of an unpair). */
  kick(workloadId: string): void {
    this.#hub.emit(`kick:${workloadId}`)
  }
}
