import type { HostPolicy, Workload, WorkloadChange } from '@palisade/model'
import { hostPolicyComputer, workloadsAffected } from '@palisade/model'
import type { Kysely } from 'kysely'
import { now } from '../clock.js'
import { sha256 } from '../crypto.js'
import type { Database } from '../db/schema.js'
import { workloadHref } from '../hrefs.js'
import { hostsOf, storePolicies } from '../stores/host-policies.js'
import type { HostPolicyFeed } from './change-feed.js'
import { snapshotWith } from './snapshot-builder.js'

/**
 * The host policy of every managed workload: computed from the active policy and the current
 * workloads whenever either changes (every host when the policy changed, only the hosts a
 * workload change can reach when it did not), stored, and announced to the waiting agents whose
 * policy changed.
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
    const running = this.#running.get(org)
    const next = (async () => {
      await running?.catch(() => undefined)
      const rest = (this.#restUntil.get(org) ?? 0) - performance.now()
      if (rest > 0) await new Promise((r) => setTimeout(r, rest))
      this.#queued.delete(org)
      const started = performance.now()
      const run = this.#recomputeNow(org)
      this.#running.set(org, run)
      try {
        return await run
      } finally {
        const ended = performance.now()
        this.#restUntil.set(org, ended + (ended - started))
        if (this.#running.get(org) === run) this.#running.delete(org)
      }
    })()
    this.#queued.set(org, next)
    return next
  }

  readonly #restUntil = new Map<number, number>()
  readonly #queued = new Map<number, Promise<number>>()
  readonly #running = new Map<number, Promise<number>>()

  /**
   * What the last recompute of each org saw: the policy (everything but the workloads) and each
   * workload, keyed by the columns it was made from. When the policy is the same the next time,
   * only the hosts a workload change can affect are computed again; otherwise every host is.
   * Unchanged rows reuse their model, so a run costs one read of the workloads and little else.
   */
  readonly #seen = new Map<number, { policy: string; workloads: Map<string, SeenWorkload> }>()

  async #recomputeNow(org: number): Promise<number> {
    const hosts = await hostsOf(this.db, org)
    const seen = this.#seen.get(org)
    const workloads = new Map<string, SeenWorkload>()
    for (const h of hosts) {
      const href = workloadHref(org, h.id)
      const before = seen?.workloads.get(href)
      workloads.set(href, before?.key === h.key ? before : { key: h.key, model: h.model() })
    }
    const snap = await snapshotWith(
      this.db,
      org,
      'active',
      [...workloads.values()].map((w) => w.model),
    )
    const policy = JSON.stringify({ ...snap, workloads: undefined })
    const targets =
      seen?.policy === policy
        ? workloadsAffected(snap, changesOf(seen.workloads, workloads))
        : undefined
    const compute = hostPolicyComputer(snap)
    const out: Database['host_policies'][] = []
    for (const h of hosts) {
      const href = workloadHref(org, h.id)
      if (!h.managed || (targets && !targets.has(href))) continue
      const hostPolicy = compute(href)
      const hash = contentHash(hostPolicy)
      if (h.hash === hash) continue
      out.push({
        workload_id: h.id,
        org_id: org,
        version: hostPolicy.version,
        hash,
        policy: JSON.stringify(hostPolicy),
        updated_at: now(),
      })
    }
    await storePolicies(this.db, out)
    this.#seen.set(org, { policy, workloads })
    this.feed.announce(out)
    return out.length
  }
}

interface SeenWorkload {
  readonly key: string
  readonly model: Workload
}

/** The workloads added, removed or changed between two reads. */
function changesOf(
  before: ReadonlyMap<string, SeenWorkload>,
  after: ReadonlyMap<string, SeenWorkload>,
): WorkloadChange[] {
  const changes: WorkloadChange[] = []
  for (const [href, w] of after) {
    const b = before.get(href)
    if (b !== w) changes.push({ before: b?.model, after: w.model })
  }
  for (const [href, b] of before) if (!after.has(href)) changes.push({ before: b.model })
  return changes
}

/**
 * A host policy's hash leaves out the version: a provision that does not change what a host
 * enforces leaves its stored policy, and its agent, alone.
 */
function contentHash(policy: HostPolicy): string {
  return sha256(JSON.stringify({ ...policy, version: undefined })).slice(0, 16)
}
