/**
 * The agent replaces itself when its server orders another build: it downloads the build over
 * its own TLS channel, checks size and SHA-256 against the order and that it runs, keeps the
 * build it runs as `<executable>.previous`, renames the new one over the executable (there is
 * always a whole executable at that path) and restarts. Our rules stay in the kernel throughout:
 * stopping never removes them, and the new build adopts them.
 *
 * The new build is on trial (`upgrade.json` in the state dir): if it has not reported to the
 * server by the deadline, from a timer or, should it have crashed and been restarted, on its
 * next start, the previous build is renamed back, the failure recorded as an event, and the
 * agent restarts as it was. A release rolled back here is not tried again.
 *
 * A build that crashes before this code runs cannot roll itself back: under the systemd unit,
 * its start guard (install.sh), run before each start, puts the previous build back once the
 * new one was started three times on trial. That previous build then finds the trial it did
 * not end, of a build that is not its own, from a build that is: it reports the rollback.
 */
import type { AgentBuild, UpgradeOrder } from '@palisade/protocol'
import { agentDownloadRoute } from '@palisade/protocol'
import { execFile } from 'node:child_process'
import { chmod, link, readFile, rename, rm } from 'node:fs/promises'
import { promisify } from 'node:util'
import type { Clock, Timer } from './clock.js'
import type { AgentEvent } from './events.js'
import { agentEvent } from './events.js'
import type { ServerClient } from './server-client.js'
import { download, replyError } from './server-client.js'
import type { StatePaths } from './state-dir.js'
import { readJson, writeJson } from './state-dir.js'

/** How long a new build has to report to the server before it is rolled back. */
export const DEFAULT_TRIAL_MS = 60_000
/** After a failed attempt (a download cut short), the same order is tried again after this. */
const RETRY_MS = 5 * 60_000

/** `upgrade.json`: a build on trial, or one rolled back (not tried again). */
export interface UpgradeMarker {
  readonly state: 'trial' | 'rolled_back'
  readonly release: string
  readonly from: { readonly version: string; readonly sha256: string }
  readonly to_sha256: string
  readonly executable: string
  readonly previous: string
  readonly deadline_at: string
  readonly reason?: string
}

export interface SelfUpgradeOptions {
  readonly paths: StatePaths
  readonly clock: Clock
  /** What this process runs. */
  readonly build: AgentBuild
  /** The one-file agent's path; undefined when it runs from a source checkout. */
  readonly executable: string | undefined
  readonly client: Pick<ServerClient, 'stream'> | undefined
  readonly trialMs: number
  readonly record: (e: AgentEvent) => void
  readonly log: (line: Record<string, unknown>) => void
  /** Stops the agent (its rules stay) and starts the executable again. */
  readonly restart: (why: string) => void
  /** A downloaded build's answer to `--version` (default: run it). */
  readonly versionOf?: (file: string) => Promise<string>
}

const run = promisify(execFile)
const runVersion = async (file: string) =>
  (await run(file, ['--version'], { env: {}, timeout: 30_000 })).stdout.trim()

export class SelfUpgrade {
  readonly #o: SelfUpgradeOptions
  #busy = false
  /**
   * A new build is in place and this process is on its way out: an order seen meanwhile (the
   * server's, polled while the agent stops) is not acted on, which would keep the new build as
   * the one to roll back to.
   */
  #installed = false
  #trial: Timer | undefined
  #marker: UpgradeMarker | undefined
  /** Orders that failed here, by SHA-256: when they may be tried again. */
  readonly #failed = new Map<string, number>()
  /** What is under way (a download, a rollback, ending a trial). */
  #work: Promise<void> = Promise.resolve()

  constructor(o: SelfUpgradeOptions) {
    this.#o = o
  }

  /**
   * At start: a build on trial that is this one has until its deadline to report; past it,
   * it is rolled back now ('restart': the caller starts nothing and lets the old build start).
   */
  async resume(): Promise<'run' | 'restart'> {
    const m = await readJson<UpgradeMarker>(this.#o.paths.upgrade)
    this.#marker = m
    if (m?.state !== 'trial') return 'run'
    if (m.to_sha256 !== this.#o.build.sha256) {
      if (m.from.sha256 === this.#o.build.sha256) {
        // The build it came from runs: the start guard (or someone) put it back.
        const starts = await readFile(this.#o.paths.upgradeStarts, 'utf8').catch(() => '')
        await this.#rolledBack(
          m,
          /^\d+$/.test(starts.trim())
            ? `it was started ${starts.trim()} times without reporting to the server (it did not start: a corrupt build, or one that exits at once), and the unit's start guard put the previous build back`
            : 'the previous build was put back in place before the new one reported',
        )
        await rm(this.#o.paths.upgradeStarts, { force: true })
        return 'run'
      }
      // Someone put another build in place: the trial is over, nothing to roll back.
      await this.#mark({ ...m, state: 'rolled_back', reason: 'another build was started' })
      return 'run'
    }
    const left = Date.parse(m.deadline_at) - Date.parse(this.#o.clock.isoNow())
    if (left <= 0) {
      await this.#rollBack(m, `it did not report to the server by ${m.deadline_at}`)
      return 'restart'
    }
    this.#trial = this.#o.clock.setTimeout(
      () =>
        void (this.#work = this.#rollBack(
          m,
          `it did not report to the server within ${this.#o.trialMs} ms`,
        )
          .then(() => this.#o.restart(`rolled back from release ${m.release}`))
          .catch(this.#logError('the rollback failed'))),
      left,
      { background: true },
    )
    this.#o.log({ msg: 'new build on trial', release: m.release, deadline: m.deadline_at })
    return 'run'
  }

  /** A status report reached the server: a build on trial passed. */
  reported(): void {
    const m = this.#marker
    if (m?.state !== 'trial' || !this.#trial) return
    this.#trial.cancel()
    this.#trial = undefined
    this.#marker = undefined
    this.#work = Promise.all([
      rm(this.#o.paths.upgrade, { force: true }),
      rm(this.#o.paths.upgradeStarts, { force: true }),
    ]).then(() => {
      this.#o.log({ msg: 'upgraded', release: m.release })
      this.#o.record(
        agentEvent(this.#o.clock, 'agent.upgrade', 'info', {
          release: m.release,
          from_version: m.from.version,
          version: this.#o.build.version,
          sha256: m.to_sha256,
        }),
      )
    }, this.#logError('cannot end the upgrade trial'))
  }

  stop(): void {
    this.#trial?.cancel()
  }

  /** Resolves once what is under way has ended. */
  async idle(): Promise<void> {
    await this.#work
  }

  /** The server orders `o`: acted on once at a time, never for this build or a rolled-back one. */
  order(o: UpgradeOrder): void {
    const { build } = this.#o
    if (this.#busy || this.#installed || this.#trial || o.sha256 === build.sha256) return
    const m = this.#marker
    if (m?.state === 'rolled_back' && m.to_sha256 === o.sha256) return
    const retryAt = this.#failed.get(o.sha256)
    if (retryAt !== undefined && this.#o.clock.now() < retryAt) return
    this.#busy = true
    this.#work = this.#upgrade(o)
      .catch((e: Error) => {
        const first = !this.#failed.has(o.sha256)
        this.#failed.set(o.sha256, this.#o.clock.now() + RETRY_MS)
        this.#o.log({ msg: 'upgrade failed', release: o.release, error: e.message })
        if (first)
          this.#o.record(
            agentEvent(this.#o.clock, 'agent.upgrade_failed', 'err', {
              release: o.release,
              reason: e.message,
              rolled_back: false,
              version: build.version,
            }),
          )
      })
      .finally(() => {
        this.#busy = false
      })
  }

  async #upgrade(o: UpgradeOrder): Promise<void> {
    const { build, executable: exe, client } = this.#o
    if (exe === undefined || build.sha256 === null || !client)
      throw new Error(
        `this agent runs from a source checkout, not as the one-file agent, so it cannot replace itself with release ${o.release}: install the one-file agent (the server's install script)`,
      )
    const file = `${exe}.download`
    await rm(file, { force: true })
    try {
      this.#o.log({ msg: 'downloading', release: o.release, size: o.size })
      const got = await download(client, agentDownloadRoute(build.arch), file, o.size)
      if (!got.ok) throw new Error(`the server refused the download: ${replyError(got.reply)}`)
      if (got.size !== o.size || got.sha256 !== o.sha256)
        throw new Error(
          `the downloaded build is ${got.size} bytes with SHA-256 ${got.sha256}, not ${o.size} bytes with ${o.sha256} as ordered: nothing was replaced`,
        )
      await chmod(file, 0o755)
      const answer = await (this.#o.versionOf ?? runVersion)(file).catch((e: Error) => {
        throw new Error(`the downloaded build does not run here: ${e.message}`, { cause: e })
      })
      if (answer !== o.release)
        throw new Error(
          `the downloaded build says it is version ${answer}, not ${o.release}: nothing was replaced`,
        )
      // The running build is kept by a second name first: at every instant the executable's
      // path holds a whole build, the old one or the new one.
      const previous = `${exe}.previous`
      await rm(`${previous}.tmp`, { force: true })
      await link(exe, `${previous}.tmp`)
      await rename(`${previous}.tmp`, previous)
      // The start guard counts this trial's starts from none.
      await rm(this.#o.paths.upgradeStarts, { force: true })
      const deadline = Date.parse(this.#o.clock.isoNow()) + this.#o.trialMs
      await this.#mark({
        state: 'trial',
        release: o.release,
        from: { version: build.version, sha256: build.sha256 },
        to_sha256: o.sha256,
        executable: exe,
        previous,
        deadline_at: new Date(deadline).toISOString(),
      })
      await rename(file, exe).catch(async (e: Error) => {
        // Nothing was swapped: no trial.
        this.#marker = undefined
        await rm(this.#o.paths.upgrade, { force: true })
        throw e
      })
    } finally {
      await rm(file, { force: true })
    }
    this.#installed = true
    this.#o.log({ msg: 'upgrade installed; restarting', release: o.release })
    this.#o.restart(`upgrade to release ${o.release}`)
  }

  /** Puts the previous build back in place; the failure is recorded for the server. */
  async #rollBack(m: UpgradeMarker, reason: string): Promise<void> {
    this.#trial = undefined
    await rename(m.previous, m.executable)
    await this.#rolledBack(m, reason)
  }

  /** The previous build is back in place: recorded, and the release not tried again. */
  async #rolledBack(m: UpgradeMarker, reason: string): Promise<void> {
    await this.#mark({ ...m, state: 'rolled_back', reason })
    this.#o.log({ msg: 'rolled back', release: m.release, reason })
    this.#o.record(
      agentEvent(this.#o.clock, 'agent.upgrade_failed', 'err', {
        release: m.release,
        reason: `release ${m.release} was rolled back to version ${m.from.version}: ${reason}`,
        rolled_back: true,
        version: m.from.version,
      }),
    )
  }

  async #mark(m: UpgradeMarker): Promise<void> {
    this.#marker = m
    await writeJson(this.#o.paths.upgrade, m)
  }

  #logError(what: string): (e: Error) => void {
    return (e) => this.#o.log({ msg: what, error: e.message })
  }
}
