import type {
  Backend,
  BuiltinChain,
  Chain,
  Desired,
  NamedSet,
  Plan,
  Rule,
  Ruleset,
  Table,
} from '@palisade/firewall'
import {
  compile,
  diff,
  EMPTY_RULESET,
  IPSET_PREFIX,
  IPT_PREFIX,
  NFT_TABLE,
  planApply,
} from '@palisade/firewall'
import { DEFAULT_FAILSAFE, hostPolicyFromLocalFile } from '@palisade/model'
import type { Clock } from './clock.js'
import type { ChangeBatch, Dataplane, MonitorEvent } from './dataplane.js'

/** Version `version` of a policy allowing `peer` to TCP `port` (80 + version unless given). */
export const desiredOf = (
  version = 1,
  o: { readonly backend?: Backend; readonly peer?: string; readonly port?: number } = {},
): Desired =>
  compile(
    hostPolicyFromLocalFile({
      version,
      rules: [
        {
          action: 'allow',
          direction: 'inbound',
          peers: [o.peer ?? '198.18.0.0/24'],
          services: [{ proto: 6, port: o.port ?? 80 + version }],
        },
      ],
    }),
    { backend: o.backend ?? 'nftables', failsafe: DEFAULT_FAILSAFE },
  )

/** The pid our fake commands commit with; anything else is another process. */
export const OWN_PID = 1000
/** The process that tampers, unless a test names another. */
export const TAMPERER = { pid: 4242, comm: 'nft' } as const

const BUILTIN: readonly BuiltinChain[] = ['INPUT', 'OUTPUT', 'FORWARD']
const HOOKS = { INPUT: 'input', OUTPUT: 'output', FORWARD: 'forward' } as const
const isOurTable = (t: Table) => t.source === 'nft' && t.family === 'inet' && t.name === NFT_TABLE
const isHook = (r: Rule) =>
  (r.verdict?.kind === 'jump' || r.verdict?.kind === 'goto') &&
  r.verdict.target.startsWith(IPT_PREFIX)

/**
 * The kernel after an apply of `desired`, in the form the parsers read it back; a rules-only
 * apply (`rulesOnly`) leaves the contents of our sets as they are, as the real one does.
 */
function applied(kernel: Ruleset, desired: Desired, rulesOnly: boolean): Ruleset {
  const had = (s: NamedSet, sets: readonly NamedSet[] | undefined): NamedSet => {
    const h = rulesOnly ? sets?.find((k) => k.name === s.name) : undefined
    return h ? { ...s, elements: h.elements } : s
  }
  if (desired.backend === 'nftables') {
    const ours = kernel.tables.find(isOurTable)
    return {
      ...kernel,
      tables: [
        ...kernel.tables.filter((t) => !isOurTable(t)),
        ...desired.tables.map((t) => ({ ...t, sets: t.sets.map((s) => had(s, ours?.sets)) })),
      ],
    }
  }
  const tables = kernel.tables.filter((t) => !(t.source === desired.backend && t.name === 'filter'))
  for (const family of ['ip', 'ip6'] as const) {
    const have = kernel.tables.find(
      (t) => t.source === desired.backend && t.family === family && t.name === 'filter',
    )
    const want = desired.tables.find((t) => t.family === family)
    const builtins: Chain[] = BUILTIN.map((name) => {
      const foreign = (have?.chains.find((c) => c.name === name)?.rules ?? []).filter(
        (r) => !isHook(r),
      )
      const hooks = desired.hooks
        .filter((h) => h.family === family && h.chain === name)
        .map((h) => h.rule)
      return {
        name,
        base: { type: 'filter', hook: HOOKS[name], priority: 0, policy: 'accept' },
        rules: desired.hookPosition === 'first' ? [...hooks, ...foreign] : [...foreign, ...hooks],
      }
    })
    const others = (have?.chains ?? []).filter(
      (c) => !BUILTIN.includes(c.name as BuiltinChain) && !c.name.startsWith(IPT_PREFIX),
    )
    tables.push({
      family,
      name: 'filter',
      source: desired.backend,
      chains: [...builtins, ...others, ...(want?.chains ?? [])],
      sets: [],
    })
  }
  return {
    ...kernel,
    tables,
    ipsets: [
      ...kernel.ipsets.filter((s) => !s.name.startsWith(IPSET_PREFIX)),
      ...desired.ipsets.map((s) => had(s, kernel.ipsets)),
    ],
  }
}

/** What reading our objects back shows: our table, or the filter tables and the ipsets. */
function ownView(kernel: Ruleset, backend: Backend, elements: boolean): Ruleset {
  const strip = (s: NamedSet): NamedSet => ({ ...s, elements: [] })
  const tables =
    backend === 'nftables'
      ? kernel.tables.filter(isOurTable)
      : kernel.tables.filter((t) => t.source === backend && t.name === 'filter')
  const view: Ruleset = {
    tables: elements ? tables : tables.map((t) => ({ ...t, sets: t.sets.map(strip) })),
    ipsets: backend === 'nftables' ? [] : elements ? kernel.ipsets : kernel.ipsets.map(strip),
  }
  return elements ? view : { ...view, elementsOmitted: true }
}

/** Changes every rule list of a chain named `chain`, wherever it is. */
export const editChain =
  (chain: string, edit: (rules: readonly Rule[]) => readonly Rule[]) =>
  (rs: Ruleset): Ruleset => ({
    ...rs,
    tables: rs.tables.map((t) => ({
      ...t,
      chains: t.chains.map((c) => (c.name === chain ? { ...c, rules: edit(c.rules) } : c)),
    })),
  })

/** Another process deletes the first rule of our `input` chain. */
export const deleteFirstRule = editChain('input', (rules) => rules.slice(1))

/**
 * An in-memory kernel for unit tests: it holds a `Ruleset`, applies a `Desired` by producing
 * the form the parsers would read back, and reports changes the way `nft monitor` does. Tests
 * tamper with it, lose events, end the monitor, slow the tools down or make them fail.
 */
export class FakeDataplane implements Dataplane {
  kernel: Ruleset = EMPTY_RULESET
  /** How long each read and each apply take, on the clock. */
  delayMs = 0
  /** How much longer a read with set contents takes (listing 100,000 addresses takes seconds). */
  elementsReadMs = 0
  /** Our objects after every change to the kernel, ours or others', and when: to time gaps. */
  readonly history: { readonly at: number; readonly own: Ruleset }[] = []
  /** Calls so far, for tests that count the work done; `abortedReads`: ended by their signal. */
  readonly calls = {
    reads: 0,
    fullReads: 0,
    abortedReads: 0,
    applies: 0,
    watches: 0,
    looks: 0,
    closes: 0,
  }
  /** Each read's `unlessChanged`, in order: which reads may be answered from what was known. */
  readonly unlessChanged: boolean[] = []
  /** Offers the cheap look for changes since a read (`changed`), as the kernel's does for iptables. */
  looks = false
  #seenAtRead: { rules: string; sets: string } | undefined
  /** Runs after each of our applies: another process that undoes it, for instance. */
  afterApply: ((kernel: Ruleset) => Ruleset) | undefined
  readonly #failures: { what: 'read' | 'apply'; error: Error }[] = []
  readonly #watchers = new Set<(e: MonitorEvent) => void>()

  constructor(
    readonly backend: Backend,
    private readonly clock: Clock,
  ) {}

  async read(opts: {
    elements: boolean
    unlessChanged?: boolean
    signal?: AbortSignal
  }): Promise<Ruleset> {
    this.calls.reads++
    this.unlessChanged.push(opts.unlessChanged === true)
    if (opts.elements) this.calls.fullReads++
    this.#seenAtRead = this.#look()
    await this.#tool('read', opts.signal, opts.elements ? this.elementsReadMs : 0)
    return ownView(this.kernel, this.backend, opts.elements)
  }

  async apply(desired: Desired, actual: Ruleset, opts: { modeChanged: boolean }): Promise<Plan> {
    this.calls.applies++
    await this.#tool('apply')
    const plan: Plan = opts.modeChanged
      ? { kind: 'full' }
      : planApply(desired, diff(desired, actual))
    if (plan.kind === 'none') return plan
    this.#set(applied(this.kernel, desired, plan.kind === 'rules'))
    this.#change({ pid: OWN_PID, comm: 'nft' }, [`# applied policy version ${desired.version}`])
    if (this.afterApply) this.#set(this.afterApply(this.kernel))
    return plan
  }

  changed(): Promise<{ rules: boolean; elements: boolean } | undefined> {
    const seen = this.#seenAtRead
    if (!this.looks || seen === undefined) return Promise.resolve(undefined)
    this.calls.looks++
    const now = this.#look()
    return Promise.resolve({ rules: now.rules !== seen.rules, elements: now.sets !== seen.sets })
  }

  #look(): { rules: string; sets: string } {
    const own = ownView(this.kernel, this.backend, true)
    return { rules: JSON.stringify(own.tables), sets: JSON.stringify(own.ipsets) }
  }

  watch(onEvent: (e: MonitorEvent) => void): { stop(): void } {
    this.calls.watches++
    this.#watchers.add(onEvent)
    return { stop: () => void this.#watchers.delete(onEvent) }
  }

  isOwn(batch: ChangeBatch): boolean {
    return batch.pid === OWN_PID
  }

  close(): void {
    this.calls.closes++
  }

  /** Our objects as a read would show them, without counting as one (for tests to compare). */
  get own(): Ruleset {
    return ownView(this.kernel, this.backend, true)
  }

  /** Whether anyone follows change events now. */
  get watched(): boolean {
    return this.#watchers.size > 0
  }

  /** Another process changes the kernel; with `event: false` nothing reports it. */
  tamper(
    change: (rs: Ruleset) => Ruleset,
    o: { by?: { pid: number; comm: string }; event?: boolean; lines?: string[] } = {},
  ): void {
    this.#set(change(this.kernel))
    if (o.event !== false)
      this.#change(o.by ?? TAMPERER, o.lines ?? ['delete rule inet palisade input handle 7'])
  }

  /** The kernel dropped change events. */
  loseEvents(): void {
    this.#emit({ kind: 'lost' })
  }

  /** The change monitor ends on its own: nothing is reported until it is watched again. */
  endMonitor(reason: string): void {
    this.#emit({ kind: 'exited', reason })
    this.#watchers.clear()
  }

  /** The next read or apply fails with `message` (call again for more). */
  fail(what: 'read' | 'apply', message: string): void {
    this.#failures.push({ what, error: new Error(message) })
  }

  async #tool(what: 'read' | 'apply', signal?: AbortSignal, extraMs = 0): Promise<void> {
    if (this.delayMs + extraMs > 0) await this.#wait(this.delayMs + extraMs, signal)
    const i = this.#failures.findIndex((f) => f.what === what)
    const failure = i >= 0 ? this.#failures.splice(i, 1)[0] : undefined
    if (failure) throw failure.error
  }

  /** The tool's time; a signal that aborts meanwhile ends it at once, as killing the tool does. */
  #wait(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      const ended = () => {
        timer.cancel()
        this.calls.abortedReads++
        reject(new DOMException('the read was aborted', 'AbortError'))
      }
      const timer = this.clock.setTimeout(() => {
        signal?.removeEventListener('abort', ended)
        resolve()
      }, ms)
      signal?.addEventListener('abort', ended, { once: true })
    })
  }

  #set(kernel: Ruleset): void {
    this.kernel = kernel
    this.history.push({ at: this.clock.now(), own: ownView(kernel, this.backend, true) })
  }

  #change(by: { pid: number; comm: string }, lines: string[]): void {
    this.#emit({ kind: 'change', batch: { text: lines.join('\n'), ...by, at: this.clock.now() } })
  }

  #emit(e: MonitorEvent): void {
    for (const w of [...this.#watchers]) w(e)
  }
}
