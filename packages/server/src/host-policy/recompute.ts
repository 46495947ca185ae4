import type {
  AddressSet,
  PolicyDoc,
  PolicySnapshot,
  Workload,
  WorkloadChange,
} from '@palisade/model'
import { hostPolicyComputer, hostsAffected } from '@palisade/model'
import { SetReferencer } from '@palisade/protocol'
import type { Kysely } from 'kysely'
import { now } from '../clock.js'
import { sha256 } from '../crypto.js'
import type { Database } from '../db/schema.js'
import { workloadHref } from '../hrefs.js'
import type { Db } from '../stores/db.js'
import { keepSets, RELEASED_SET_KEPT_MS, sweepSets } from '../stores/address-sets.js'
import { recordEvent } from '../stores/events.js'
import type { Host } from '../stores/host-policies.js'
import { hostsOf, setPolicyError, writePolicies } from '../stores/host-policies.js'
import type { HostPolicyFeed } from './change-feed.js'
import { snapshotWith } from './snapshot-builder.js'
import { screenWorkload } from './workload-screen.js'

/** How often a server looks for sets no host policy names any more (at a recompute). */
const SWEEP_EVERY_MS = 60_000

/** The policy itself (not one workload's row) could not be computed: nothing was stored. */
export class HostPolicyError extends Error {
  constructor(cause: Error) {
    super(`the host policies could not be computed: ${cause.message}`, { cause })
  }
}

/**
 * The host policy of every managed workload: computed from the active policy and the current
 * workloads whenever either changes (only the hosts the change can reach: `hostsAffected`),
 * stored, and announced to the waiting agents whose policy changed. A workload whose stored row cannot be used is flagged (`policy_error`, an
 * event) and left out; every other host is still computed.
 */
export class HostPolicyRecompute {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly feed: HostPolicyFeed,
  ) {}

  /**
   * Recomputes the host policies a change can affect; resolves with how many changed. Calls that
   * arrive while one runs share the next run, which starts when the current one ends and no
   * sooner than the current one took again: a burst of changes (say, a thousand agents
   * activating) costs a few runs, not a thousand, runs never take more than half the store's
   * time from the writes that asked for them, and every caller still gets a run that started
   * after its change.
   */
  recompute(org: number): Promise<number> {
    const queued = this.#queued.get(org)
    if (queued) return queued
    const next = this.#alone(org, async () => {
      const rest = (this.#restUntil.get(org) ?? 0) - performance.now()
      if (rest > 0) await new Promise((r) => setTimeout(r, rest))
      this.#queued.delete(org)
      const started = performance.now()
      try {
        const run = await this.#compute(this.db, org)
        await this.db.transaction().execute((tx) => this.#write(tx, org, run))
        return this.#done(org, run)
      } finally {
        const ended = performance.now()
        this.#restUntil.set(org, ended + (ended - started))
      }
    })
    this.#queued.set(org, next)
    return next
  }

  /**
   * Runs `change` and recomputes every host it affects in one transaction, with no other
   * recompute of the org meanwhile: the change commits with the host policies it makes, or,
   * when they cannot be computed, not at all (never a committed policy that agents cannot get).
   * Resolves with what `change` returned and how many host policies changed.
   */
  changeWithRecompute<T>(
    org: number,
    change: (tx: Db) => Promise<T>,
  ): Promise<{ value: T; changed: number }> {
    return this.#alone(org, async () => {
      let run: Run | undefined
      const value = await this.db.transaction().execute(async (tx) => {
        const v = await change(tx)
        run = await this.#compute(tx, org, true)
        await this.#write(tx, org, run)
        return v
      })
      return { value, changed: run ? this.#done(org, run) : 0 }
    })
  }

  /**
   * Settles once every run started or queued so far has ended: a server closing waits for the
   * runs that activations and reports started without waiting, before it closes the store.
   */
  async idle(): Promise<void> {
    while (this.#tail.size > 0)
      await Promise.all([...this.#tail.values()].map((t) => t.catch(() => undefined)))
  }

  readonly #restUntil = new Map<number, number>()
  /** Names each large set by its content id, hashing each set object once. */
  readonly #refs = new SetReferencer()
  /** When each org's unnamed sets were last looked for (see `sweepSets`). */
  readonly #sweptAt = new Map<number, number>()
  readonly #queued = new Map<number, Promise<number>>()
  /** The end of the last work queued for each org: runs of one org never overlap. */
  readonly #tail = new Map<number, Promise<unknown>>()

  #alone<T>(org: number, work: () => Promise<T>): Promise<T> {
    const done = (this.#tail.get(org) ?? Promise.resolve()).catch(() => undefined).then(work)
    this.#tail.set(org, done)
    void done
      .catch(() => undefined)
      .then(() => {
        if (this.#tail.get(org) === done) this.#tail.delete(org)
      })
    return done
  }

  /**
   * What the last recompute of each org saw: the snapshot, and each workload keyed by the
   * columns it was made from. The next run computes only the hosts the difference can reach.
   * Unchanged rows reuse their model, so a run costs one read of the workloads and little else.
   */
  readonly #seen = new Map<number, Seen>()

  /**
   * Reads and computes (through `db`, the store or a transaction); writes nothing. A host whose
   * row passed the screen but whose policy still cannot be computed is flagged; when `strict`
   * (a provision), it is the policy's fault, and the run throws instead.
   */
  async #compute(db: Db, org: number, strict = false): Promise<Run> {
    const hosts = await hostsOf(db, org)
    const seen = this.#seen.get(org)
    const workloads = new Map<string, SeenWorkload>()
    for (const h of hosts) {
      const href = workloadHref(org, h.id)
      const before = seen?.workloads.get(href)
      workloads.set(
        href,
        before?.key === h.key ? before : { key: h.key, ...screenWorkload(() => h.model()) },
      )
    }
    const models = [...workloads.values()].flatMap((w) => (w.model ? [w.model] : []))
    const snap = await snapshotWith(db, org, 'active', models)
    const targets = seen && affectedOrAll(seen.snapshot, snap, changesOf(seen.workloads, workloads))
    // A host with no stored policy, or flagged, is computed whatever changed: it may read now.
    const target = (h: Host, href: string) =>
      !targets || targets.has(href) || h.hash === null || h.policyError !== null
    let compute: ReturnType<typeof hostPolicyComputer>
    try {
      compute = hostPolicyComputer(snap)
    } catch (e) {
      throw new HostPolicyError(e as Error)
    }
    const out: Database['host_policies'][] = []
    const sets = new Map<string, AddressSet>()
    const errors = new Map<string, string | null>()
    for (const h of hosts) {
      const href = workloadHref(org, h.id)
      let reason = workloads.get(href)?.reason
      if (!reason && h.managed && target(h, href)) {
        try {
          const { doc, sets: named } = this.#refs.docOf(compute(href))
          const hash = contentHash(doc)
          if (h.hash !== hash) {
            out.push({
              workload_id: h.id,
              org_id: org,
              version: doc.version,
              hash,
              policy: JSON.stringify(doc),
              set_ids: JSON.stringify([...named.keys()]),
              updated_at: now(),
            })
            for (const [id, set] of named) sets.set(id, set)
          }
        } catch (e) {
          if (strict) throw new HostPolicyError(e as Error)
          reason = `its host policy could not be computed: ${(e as Error).message}`
        }
      }
      const stored = h.policyError ? reasonOf(h.policyError) : undefined
      if (reason !== undefined && reason !== stored) errors.set(h.id, reason)
      // A row that reads again is cleared once it is computed (or needs no policy).
      else if (reason === undefined && stored !== undefined && (!h.managed || target(h, href)))
        errors.set(h.id, null)
    }
    return { out, sets, errors, seen: { snapshot: snap, workloads } }
  }

  /** Stores a run's host policies and flags, with an event for each workload newly flagged. */
  async #write(tx: Db, org: number, run: Run): Promise<void> {
    await keepSets(tx, org, run.sets)
    await writePolicies(tx, run.out)
    const at = now()
    if (Date.parse(at) - (this.#sweptAt.get(org) ?? 0) >= SWEEP_EVERY_MS) {
      await sweepSets(tx, org, at, new Date(Date.parse(at) - RELEASED_SET_KEPT_MS).toISOString())
      this.#sweptAt.set(org, Date.parse(at))
    }
    for (const [id, reason] of run.errors) {
      await setPolicyError(tx, id, reason === null ? null : { reason, at })
      if (reason !== null)
        await recordEvent(tx, org, {
          event_type: 'workload.policy_error',
          severity: 'err',
          created_by: { system: {} },
          notifications: [
            {
              notification_type: 'workload.policy_error',
              info: {
                workload: workloadHref(org, id),
                reason,
                what_to_do:
                  'correct or delete the workload; its host keeps the policy it last had, and every other host is computed without it',
              },
            },
          ],
        })
    }
  }

  /** After the run's writes committed: remember what it saw and wake the agents. */
  #done(org: number, run: Run): number {
    this.#seen.set(org, run.seen)
    this.feed.announce(run.out)
    return run.out.length
  }
}

interface SeenWorkload {
  readonly key: string
  /** Its model, when its row could be used; else why not. */
  readonly model?: Workload
  readonly reason?: string
}

interface Seen {
  readonly snapshot: PolicySnapshot
  readonly workloads: Map<string, SeenWorkload>
}

interface Run {
  readonly out: Database['host_policies'][]
  /** The sets the policies in `out` name. */
  readonly sets: Map<string, AddressSet>
  /** The workloads whose flag changes: why their row cannot be used, or null (it can again). */
  readonly errors: Map<string, string | null>
  readonly seen: Seen
}

const reasonOf = (stored: string): string | undefined => {
  try {
    const r = (JSON.parse(stored) as { reason?: unknown }).reason
    return typeof r === 'string' ? r : stored
  } catch {
    return stored
  }
}

/** The workloads added, removed or changed between two reads (unusable rows count as absent). */
function changesOf(
  before: ReadonlyMap<string, SeenWorkload>,
  after: ReadonlyMap<string, SeenWorkload>,
): WorkloadChange[] {
  const changes: WorkloadChange[] = []
  for (const [href, w] of after) {
    const b = before.get(href)
    if (b !== w && (b?.model || w.model)) changes.push({ before: b?.model, after: w.model })
  }
  for (const [href, b] of before) if (!after.has(href) && b.model) changes.push({ before: b.model })
  return changes
}

/**
 * The hosts a change reaches, or undefined: all of them. Finding them resolves rule sides, which
 * fails where the policy cannot be computed; every host is then computed, and the hosts whose
 * policy fails are flagged (or the provision refused) as a full run would.
 */
function affectedOrAll(
  before: PolicySnapshot,
  after: PolicySnapshot,
  changes: readonly WorkloadChange[],
): Set<string> | undefined {
  try {
    const affected = hostsAffected(before, after, changes)
    return affected === 'all' ? undefined : affected
  } catch {
    return undefined
  }
}

/**
 * A host policy's hash leaves out the version: a provision that does not change what a host
 * enforces leaves its stored policy, and its agent, alone.
 */
function contentHash(policy: PolicyDoc): string {
  return sha256(JSON.stringify({ ...policy, version: undefined })).slice(0, 16)
}
