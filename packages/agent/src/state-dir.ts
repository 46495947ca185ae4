import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs'
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export const DEFAULT_STATE_DIR = '/var/lib/palisade'

/** Every file the agent keeps, in one place so nothing else builds paths. */
export function statePaths(dir: string) {
  return {
    dir,
    config: join(dir, 'config.json'),
    policy: join(dir, 'policy.json'),
    status: join(dir, 'status.json'),
    events: join(dir, 'events.jsonl'),
    eventsOffset: join(dir, 'events.offset'),
    flows: join(dir, 'flows.jsonl'),
    flowsOffset: join(dir, 'flows.offset'),
    pid: join(dir, 'agent.pid'),
    suspended: join(dir, 'suspended'),
    saved: join(dir, 'saved'),
    format: join(dir, 'state-format.json'),
    upgrade: join(dir, 'upgrade.json'),
    /** Starts of a build on trial, counted by the systemd unit's start guard (install.sh). */
    upgradeStarts: join(dir, 'upgrade-starts'),
  } as const
}
export type StatePaths = ReturnType<typeof statePaths>

/**
 * Writes a file so that a crash at any point leaves either the old or the new content:
 * write a temporary file, fsync it, rename it over the old one.
 */
let tmpSeq = 0
export async function writeAtomic(path: string, content: string, mode = 0o600): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${++tmpSeq}`
  const fd = openSync(tmp, 'w', mode)
  try {
    writeSync(fd, content)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  await rename(tmp, path)
}

export async function readJson<T>(path: string): Promise<T | undefined> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw e
  }
  try {
    return JSON.parse(text) as T
  } catch (e) {
    throw new Error(`${path} is not valid JSON (${(e as Error).message}); fix or remove it`, {
      cause: e,
    })
  }
}

export const writeJson = (path: string, value: unknown) =>
  writeAtomic(path, `${JSON.stringify(value, null, 2)}\n`)

export async function ensureStateDir(dir: string): Promise<StatePaths> {
  const p = statePaths(dir)
  await mkdir(p.saved, { recursive: true, mode: 0o700 })
  return p
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** The pid of the agent running on this state dir, if one is. */
export async function runningPid(p: StatePaths): Promise<number | undefined> {
  const text = await readFile(p.pid, 'utf8').catch(() => '')
  const pid = Number(text.trim())
  return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined
}

/** Claims the state dir for this process; refuses if another live agent holds it. */
export async function claimStateDir(p: StatePaths): Promise<() => Promise<void>> {
  const other = await runningPid(p)
  if (other !== undefined && other !== process.pid) {
    throw new Error(
      `another agent (pid ${other}) is running on ${p.dir}; stop it first or use another --state-dir`,
    )
  }
  await writeFile(p.pid, `${process.pid}\n`, { mode: 0o600 })
  return async () => {
    if ((await runningPid(p)) === process.pid) await rm(p.pid, { force: true })
  }
}

/**
 * Writes a JSON file that changes often (the status): one write at a time, and only the newest
 * value is written once the current write ends. A failed write is reported, never thrown away.
 */
export class LatestJsonWriter {
  #pending: unknown
  #has = false
  #busy: Promise<void> | undefined

  constructor(
    private readonly path: string,
    private readonly onError: (e: Error) => void,
  ) {}

  write(value: unknown): void {
    this.#pending = value
    this.#has = true
    this.#busy ??= this.#drain()
  }

  /** Resolves when everything written so far is on disk. */
  async flush(): Promise<void> {
    while (this.#busy) await this.#busy
  }

  async #drain(): Promise<void> {
    while (this.#has) {
      const v = this.#pending
      this.#has = false
      await writeJson(this.path, v).catch((e: Error) => this.onError(e))
    }
    this.#busy = undefined
  }
}
