/**
 * What a demo keeps on disk (its data dir, a state file, the console socket) and how `--down`,
 * from any process, finds and removes it with everything in the demo's namespaces.
 */
import { existsSync } from 'node:fs'
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { DemoFlow, DemoHost } from './demo-estate.js'
import { Lab } from './netns.js'

/** Every namespace the demo makes is named so; one demo runs on a machine at a time. */
export const DEMO_PREFIX = 'pdemo-'
/** In the data dir: what a running demo made, so that `--down` finds it from another process. */
export const DEMO_STATE = 'demo.json'
export const DEMO_SOCKET = join(tmpdir(), `${DEMO_PREFIX}console.sock`)

export interface DemoState {
  readonly pid: number
  readonly prefix: string
  readonly console_url: string
  readonly bootstrap: string
  readonly socket: string
  readonly started_at: string
  readonly hosts: readonly (Omit<DemoHost, 'template'> & { ns: string; ip4: string })[]
  readonly flows: readonly DemoFlow[]
}

/** Until the demo is up, its state file says only who owns the data dir. */
type Claim = Pick<DemoState, 'pid' | 'started_at'> & Partial<DemoState>

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const readClaim = async (dir: string): Promise<Claim | undefined> =>
  existsSync(join(dir, DEMO_STATE))
    ? (JSON.parse(await readFile(join(dir, DEMO_STATE), 'utf8')) as Claim)
    : undefined

/**
 * The demo owns its data dir: a new or empty one, or one an earlier demo left (cleared). It is
 * marked at once, so that a demo stopped while starting is recognised by the next and by --down.
 * Namespaces named for the demo are swept only when they are this data dir's earlier demo's:
 * others belong to a demo running elsewhere, or one left for `--down` to remove.
 */
export async function claimDataDir(dir: string): Promise<string[]> {
  const prior = await readClaim(dir)
  if (prior && alive(prior.pid))
    throw new Error(
      `a demo is running (pid ${prior.pid}${prior.console_url ? `, ${prior.console_url}` : ''}); stop it with Ctrl-C or \`palisade demo --down\``,
    )
  const namespaces = await Lab.named(DEMO_PREFIX)
  if (namespaces.length > 0 && !prior)
    throw new Error(
      `network namespaces ${DEMO_PREFIX}* exist: another demo is running or was left; stop it with \`palisade demo --down --data-dir ITS_DATA_DIR\``,
    )
  if (prior) {
    await removeDemoFiles(dir)
  } else if (existsSync(dir) && (await readdir(dir)).length > 0) {
    throw new Error(
      `${dir} holds files that are not a demo's: choose an empty or new directory with --data-dir`,
    )
  }
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const claim: Claim = { pid: process.pid, started_at: new Date().toISOString() }
  await writeFile(join(dir, DEMO_STATE), `${JSON.stringify(claim)}\n`)
  return namespaces.length > 0 ? Lab.sweep(DEMO_PREFIX) : []
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Removes the console socket and the data dir, only if it is a demo's (it holds the state file). */
export async function removeDemoFiles(dir: string): Promise<void> {
  await rm(DEMO_SOCKET, { force: true })
  if (existsSync(join(dir, DEMO_STATE))) await rm(dir, { recursive: true, force: true })
}

/**
 * `palisade demo --down`: stops a demo another process runs (or left), deletes every namespace
 * named for the demo with the processes and rules inside, and the demo's files. Returns what
 * it removed, for the user.
 */
export async function demoDown(dataDir: string): Promise<string[]> {
  const dir = resolve(dataDir)
  const done: string[] = []
  const state = await readClaim(dir)
  if (state && alive(state.pid)) {
    process.kill(state.pid, 'SIGTERM')
    for (let i = 0; i < 300 && alive(state.pid); i++) await sleep(100)
    if (alive(state.pid)) process.kill(state.pid, 'SIGKILL')
    done.push(`stopped the demo (pid ${state.pid})`)
  }
  const swept = await Lab.sweep(DEMO_PREFIX)
  if (swept.length > 0) done.push(`deleted namespaces ${swept.join(', ')}`)
  if (state) {
    done.push(`deleted ${dir}`)
  }
  await removeDemoFiles(dir)
  return done
}
