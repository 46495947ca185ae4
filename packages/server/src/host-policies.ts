import type { HostPolicy, PolicySnapshot, Workload, WorkloadChange } from '@palisade/model'
import { hostPolicyComputer, workloadsAffected } from '@palisade/model'
import type { Kysely } from 'kysely'
import { EventEmitter } from 'node:events'
import { sha256 } from './crypto.js'
import type { Database } from './db/schema.js'
import { snapshotOf } from './policy-docs.js'
import { now } from './clock.js'
import type { Doc } from './validate.js'
import { draftObjectHref, ruleHref, workloadHref } from './hrefs.js'
import type { PolicyType, RuleKind } from './policy/types.js'
import { labelsByHref } from './stores/labels.js'

/** How far back the store watch looks, for clocks of servers sharing a database. */
const STORE_WATCH_WINDOW_MS = 5000

/** A host policy as stored: its hash and its JSON text. */
export interface StoredPolicy {
  readonly hash: string
  readonly text: string
}

/** The columns a workload's policy model is made of. */
const MODEL_COLUMNS = [
  'workloads.id',
  'workloads.name',
  'workloads.agent_type',
  'workloads.os_platform',
  'workloads.enforcement_mode',
  'workloads.visibility_level',
  'workloads.labels',
  'workloads.interfaces',
] as const
type ModelField = (typeof MODEL_COLUMNS)[number] extends `workloads.${infer F}` ? F : never
type ModelRow = Pick<Database['workloads'], ModelField>
/** What a workload's model is made of, as one string: equal strings make equal models. */
const modelKey = (r: ModelRow) =>
  MODEL_COLUMNS.map((c) => r[c.slice('workloads.'.length) as ModelField]).join('\0')

export function workloadModel(org: number, r: ModelRow): Workload {
  return {
    href: workloadHref(org, r.id),
    name: r.name,
    agentType: r.agent_type === 'endpoint' ? 'endpoint' : 'server',
    osPlatform: r.os_platform as Workload['osPlatform'],
    enforcementMode: r.enforcement_mode as Workload['enforcementMode'],
    // The vendor's newer name for full detail.
    visibilityLevel: (r.visibility_level === 'enhanced_data_collection'
      ? 'flow_full_detail'
      : r.visibility_level) as Workload['visibilityLevel'],
    labels: (JSON.parse(r.labels) as string[]) ?? [],
    interfaces: (JSON.parse(r.interfaces) as { name: string; address: string }[]) ?? [],
  }
}

/**
 * The host policy of every managed workload: computed from the active policy and the current
 * workloads whenever either changes (every host when the policy changed, only the hosts a
 * workload change can reach when it did not), stored, and handed to waiting agents only when
 * theirs changed (a long-poll is woken by `changed:<workload>`).
 */
export class HostPolicies {
  readonly #hub = new EventEmitter()

  constructor(private readonly db: Kysely<Database>) {
    this.#hub.setMaxListeners(0)
  }

  /** The active policy (what agents enforce), or the draft (what provisioning would make it). */
  async snapshot(org: number, which: 'active' | 'draft' = 'active'): Promise<PolicySnapshot> {
    const rows = await this.db
      .selectFrom('workloads')
      .select(MODEL_COLUMNS)
      .where('org_id', '=', org)
      .execute()
    return this.#snapshotWith(
      org,
      which,
      rows.map((r) => workloadModel(org, r)),
    )
  }

  /** The active firewall settings, without reading any workload. */
  async firewallSettings(org: number): Promise<PolicySnapshot['firewallSettings']> {
    return (await this.#snapshotWith(org, 'active', [])).firewallSettings
  }

  async #snapshotWith(
    org: number,
    which: 'active' | 'draft',
    workloads: readonly Workload[],
  ): Promise<PolicySnapshot> {
    const rows = await this.db
      .selectFrom('policy_objects')
      .select(['type', 'id', 'active', 'draft', 'draft_deleted'])
      .where('org_id', '=', org)
      .execute()
    const objs = rows.flatMap((o) => {
      const text = which === 'active' ? o.active : o.draft_deleted ? null : (o.draft ?? o.active)
      return text === null ? [] : [{ type: o.type, id: o.id, text }]
    })
    const active: Record<string, { href: string; doc: Doc }[]> = {}
    for (const o of objs) {
      const href = draftObjectHref(org, o.type as PolicyType, o.id)
      ;(active[o.type] ??= []).push({
        href,
        doc: addRuleHrefs(href, JSON.parse(o.text) as Doc),
      })
    }
    const labels = await labelsByHref(this.db, org)
    const version =
      (
        await this.db
          .selectFrom('policy_versions')
          .select('version')
          .where('org_id', '=', org)
          .orderBy('version', 'desc')
          .limit(1)
          .executeTakeFirst()
      )?.version ?? 0
    return snapshotOf(
      version,
      active,
      [...labels].map(([href, l]) => ({ href, ...l })),
      workloads,
    )
  }

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
    const rows = await this.db
      .selectFrom('workloads')
      .leftJoin('host_policies', 'host_policies.workload_id', 'workloads.id')
      .select([...MODEL_COLUMNS, 'workloads.managed', 'host_policies.hash'])
      .where('workloads.org_id', '=', org)
      .execute()
    const seen = this.#seen.get(org)
    const workloads = new Map<string, SeenWorkload>()
    for (const r of rows) {
      const key = modelKey(r)
      const href = workloadHref(org, r.id)
      const before = seen?.workloads.get(href)
      workloads.set(href, before?.key === key ? before : { key, model: workloadModel(org, r) })
    }
    const snap = await this.#snapshotWith(
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
    for (const r of rows) {
      const href = workloadHref(org, r.id)
      if (r.managed !== 1 || (targets && !targets.has(href))) continue
      const hostPolicy = compute(href)
      const hash = contentHash(hostPolicy)
      if (r.hash === hash) continue
      out.push({
        workload_id: r.id,
        org_id: org,
        version: hostPolicy.version,
        hash,
        policy: JSON.stringify(hostPolicy),
        updated_at: now(),
      })
    }
    // One transaction: one commit (and one fsync) for every changed host, and all or none;
    // a thousand rows a statement (6,000 parameters, under both stores' limits), not one each.
    await this.db.transaction().execute(async (tx) => {
      for (let i = 0; i < out.length; i += 1000)
        await tx
          .insertInto('host_policies')
          .values(out.slice(i, i + 1000))
          .onConflict((oc) =>
            oc.column('workload_id').doUpdateSet((eb) => ({
              version: eb.ref('excluded.version'),
              hash: eb.ref('excluded.hash'),
              policy: eb.ref('excluded.policy'),
              updated_at: eb.ref('excluded.updated_at'),
            })),
          )
          .execute()
    })
    this.#seen.set(org, { policy, workloads })
    // Waiters get the policy with the news (no read each), and the store watch will not
    // announce these writes a second time.
    for (const r of out) {
      this.#seenChange.set(r.workload_id, r.updated_at)
      this.#hub.emit(`changed:${r.workload_id}`, { hash: r.hash, text: r.policy })
    }
    return out.length
  }

  async current(workloadId: string): Promise<{ hash: string; policy: HostPolicy } | undefined> {
    const r = await this.#stored(workloadId)
    return r ? { hash: r.hash, policy: JSON.parse(r.text) as HostPolicy } : undefined
  }

  #waiters = 0
  /** Long-polls waiting in this process. */
  get waiting(): number {
    return this.#waiters
  }
  #storeWatch: NodeJS.Timeout | undefined
  /** When each host policy last changed, as the store said: a change is announced once. */
  readonly #seenChange = new Map<string, string>()

  /**
   * One look at the store every half second for all waiters (not one per waiter): host policies
   * another server on the same database changed are announced like our own. The window reaches
   * back a few seconds, so clocks a little apart between servers lose nothing.
   */
  #watchStore(): void {
    if (this.#storeWatch) return
    this.#storeWatch = setInterval(() => {
      const since = new Date(Date.now() - STORE_WATCH_WINDOW_MS).toISOString()
      void this.db
        .selectFrom('host_policies')
        .select(['workload_id', 'updated_at'])
        .where('updated_at', '>', since)
        .execute()
        .then(
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

  /** The stored text of a host policy, sent to its agent as it is (no parse and re-serialise). */
  async #stored(workloadId: string): Promise<StoredPolicy | undefined> {
    return this.db
      .selectFrom('host_policies')
      .select(['hash', 'policy as text'])
      .where('workload_id', '=', workloadId)
      .executeTakeFirst()
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
        this.#stored(workloadId).then(
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
      this.#stored(workloadId).then(
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

  /** What uses a label: workloads carrying it and policy objects naming it (draft or active). */
  async labelUsage(org: number, href: string): Promise<string[]> {
    const wl = await this.db
      .selectFrom('workloads')
      .select(['id', 'labels'])
      .where('org_id', '=', org)
      .execute()
    const objs = await this.db
      .selectFrom('policy_objects')
      .select(['type', 'id', 'draft', 'active'])
      .where('org_id', '=', org)
      .execute()
    const quoted = JSON.stringify(href)
    return [
      ...wl
        .filter((w) => (JSON.parse(w.labels) as string[]).includes(href))
        .map((w) => workloadHref(org, w.id)),
      ...objs
        .filter((o) => (o.draft ?? '').includes(quoted) || (o.active ?? '').includes(quoted))
        .map((o) => draftObjectHref(org, o.type as PolicyType, o.id)),
    ]
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

/** Rule documents are stored with ids; the model needs their hrefs. */
function addRuleHrefs(href: string, doc: Doc): Doc {
  if (!Array.isArray(doc.rules) && !Array.isArray(doc.deny_rules)) return doc
  const withHref = (kind: RuleKind, list: unknown) =>
    ((list as Doc[]) ?? []).map((r) => ({ ...r, href: ruleHref(href, kind, r.id) }))
  return {
    ...doc,
    rules: withHref('sec_rules', doc.rules),
    deny_rules: withHref('deny_rules', doc.deny_rules),
  }
}
