import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ProcessStarter, RunResult } from '../exec.js'
import { SHELL_SESSION } from './session-protocol.js'
import { SessionUnavailable, ToolSession } from './tool-session.js'

/** The listings the agent runs through the shell: fixed words, no input, no change made. */
const LISTINGS: readonly RegExp[] = [
  /^ip6?tables-(nft|legacy)-save -t filter$/,
  /^ipset list -[tn]$/,
  /^ipset save$/,
]

/** Whether `cmd args` is one of the listings the agent runs through the tool shell. */
export const isShellListing = (cmd: string, args: readonly string[]): boolean =>
  LISTINGS.some((l) => l.test([cmd, ...args].join(' ')))

/** The changes the agent makes through the shell: fixed words, their input from a file. */
const COMMITS: readonly RegExp[] = [
  /^ip6?tables-nft-restore --noflush$/,
  /^ip6?tables-legacy-restore --noflush --wait 5$/,
  /^ipset restore$/,
]

/** Whether `cmd args`, reading its input, is one of the changes the agent makes through the shell. */
export const isShellCommit = (cmd: string, args: readonly string[]): boolean =>
  COMMITS.some((c) => c.test([cmd, ...args].join(' ')))

/** As long as a tool run once is given (exec.ts): a listing of a large ipset takes seconds. */
const TIMEOUT_MS = 30_000

/**
 * Listings and commits run by a shell kept running instead of a process the agent starts for
 * each. Node's `spawn` holds the event loop until the kernel has executed the tool: 6-25 ms a
 * tool on this kernel, more as the agent's memory grows, several times for each read of the
 * iptables backends, for every look, and for each of an apply's three or four commits. The shell
 * starts the tools of one request side by side, and the agent waits for none of it.
 *
 * Listings asked for in one turn of the event loop (a read's two `iptables-save` and its ipset
 * listing) go to the shell as one request; requests take turns. Each listing's output goes to
 * a file of its own request's in the session's directory (readable by our user alone, removed
 * by `close`), read and deleted once the shell has answered with the exit codes. A shell ended
 * (it did not answer in time, or the session was closed) ends the tools it started.
 */
export class ToolShell {
  readonly #session: ToolSession
  #waiting: Listing[] = []
  #requests = 0

  constructor(start: ProcessStarter, timeoutMs = TIMEOUT_MS) {
    this.#session = new ToolSession(SHELL_SESSION, start, timeoutMs)
  }

  /** Whether listings are still taken (not closed, the shell not given up). */
  get usable(): boolean {
    return this.#session.usable
  }

  /** Starts the shell now if it is not running, so that the next listing does not wait. */
  warm(): void {
    this.#session.warm()
  }

  /**
   * What `cmd args` printed, exit code 0. Undefined if it failed: the caller runs it once itself,
   * for the exact words of the failure. Rejects with SessionUnavailable if the shell could not
   * answer (it died, was ended, or was given up).
   */
  list(cmd: string, args: readonly string[]): Promise<RunResult | undefined> {
    return new Promise((resolve, reject) => {
      if (this.#waiting.length === 0) queueMicrotask(() => void this.#send())
      this.#waiting.push({ words: [cmd, ...args], resolve, reject })
    })
  }

  /**
   * What `cmd args` printed and its exit code, given `stdin` as its input (from a file of its
   * own, as the outputs are), and its pid, as the kernel's change events name it: run alone,
   * after the listings asked for before it. Rejects with SessionUnavailable where the shell
   * could not take it: the tool did not run, and the caller runs it once. A shell that died or
   * was ended while the tool ran (it is ended with it) answers a failure, exit code -1: the
   * change may or may not have been made, and running it again could undo half of it (an ipset
   * swap made twice is no swap), so the caller reads the kernel again instead.
   */
  async commit(cmd: string, args: readonly string[], stdin: string): Promise<RunResult> {
    if (this.#waiting.length > 0) void this.#send()
    const request = ++this.#requests
    const dir = this.#session.workDir()
    const input = join(dir, `${request}.in`)
    const out = join(dir, `${request}.out`)
    const err = join(dir, `${request}.err`)
    const unanswered = (why: string): RunResult => ({
      code: -1,
      stdout: '',
      stderr: `${why}: the tool shell ended ${cmd} without its answer; it may have made its change`,
    })
    try {
      await writeFile(input, stdin, { mode: 0o600 }).catch((e: Error) => {
        throw new SessionUnavailable(
          `cannot hand the tool shell the input of ${cmd} (${e.message})`,
        )
      })
      const answer = await this.#session
        .run(commitScript([cmd, ...args], [input, out, err]))
        .catch((e: unknown) => {
          // With the process it was sent to (see ToolSession.#end): the tool may have run.
          if (e instanceof SessionUnavailable && e.pid !== undefined) return e
          throw e
        })
      if (answer instanceof SessionUnavailable) return unanswered(answer.message)
      const [pid, code] = answer.stdout.trim().split(' ').map(Number)
      if (pid === undefined || code === undefined || !Number.isInteger(pid + code))
        return unanswered(`the tool shell answered ${JSON.stringify(answer.stdout)}`)
      const outputs = await Promise.all([readFile(out, 'utf8'), readFile(err, 'utf8')]).catch(
        (e: Error) => e,
      )
      if (outputs instanceof Error) return { ...unanswered(outputs.message), pid }
      return { code, stdout: outputs[0], stderr: outputs[1], pid }
    } finally {
      await Promise.all([input, out, err].map((f) => rm(f, { force: true })))
    }
  }

  close(): void {
    this.#session.close()
  }

  async #send(): Promise<void> {
    const batch = this.#waiting
    this.#waiting = []
    // Sent already, ahead of a commit asked for in the same turn.
    if (batch.length === 0) return
    const request = ++this.#requests
    let files: string[] = []
    let settle: (l: Listing, i: number) => void
    try {
      const dir = this.#session.workDir()
      files = batch.map((_, i) => join(dir, `${request}-${i}.out`))
      const answer = await this.#session.run(listingScript(batch, files))
      const codes = answer.stdout.trim().split(' ')
      if (codes.length !== batch.length || !codes.every((c) => /^\d+$/.test(c)))
        throw new SessionUnavailable(`the shell answered ${JSON.stringify(answer.stdout)}`)
      const outputs = await Promise.all(
        files.map((f, i) => (codes[i] === '0' ? readFile(f, 'utf8') : Promise.resolve(undefined))),
      )
      settle = (l, i) => {
        const stdout = outputs[i]
        l.resolve(stdout === undefined ? undefined : { code: 0, stdout, stderr: '' })
      }
    } catch (e) {
      const why = e instanceof SessionUnavailable ? e : new SessionUnavailable(String(e))
      settle = (l) => l.reject(why)
    }
    // Deleted before anyone is answered: a listing of 100,000 set elements is megabytes, in a
    // /tmp that may be memory.
    await Promise.all(files.map((f) => rm(f, { force: true })))
    batch.forEach(settle)
  }
}

interface Listing {
  readonly words: readonly string[]
  readonly resolve: (r: RunResult | undefined) => void
  readonly reject: (e: Error) => void
}

/** A word as the shell reads it back unchanged: in single quotes, each quote closed and escaped. */
const quoted = (word: string): string => `'${word.replaceAll("'", `'\\''`)}'`

/**
 * The shell script that runs `listings` side by side, each one's output to its file (errors
 * dropped: a failed listing is run again by the caller), and then prints their exit codes on
 * one line, in order. Ended meanwhile (SIGTERM), the shell ends them first.
 */
export function listingScript(
  listings: readonly { readonly words: readonly string[] }[],
  files: readonly string[],
): string {
  const started = listings.map(
    (l, i) =>
      `${l.words.map(quoted).join(' ')} </dev/null >${quoted(files[i] ?? '')} 2>/dev/null & p${i}=$!\n`,
  )
  const pids = listings.map((_, i) => `$p${i}`).join(' ')
  const waited = listings.map((_, i) => `wait $p${i}; c${i}=$?\n`)
  const codes = listings.map((_, i) => `$c${i}`).join(' ')
  return `${started.join('')}trap 'kill ${pids} 2>/dev/null; exit 143' TERM\n${waited.join('')}trap - TERM\necho ${codes}\n`
}

/**
 * The shell script that runs `words` with its input from `files[0]`, its output and errors to
 * `files[1]` and `files[2]`, and then prints its pid and exit code. Ended meanwhile (SIGTERM),
 * the shell ends it first (the trap is set before the tool starts).
 */
export function commitScript(words: readonly string[], files: readonly string[]): string {
  const [input = '', out = '', err = ''] = files.map(quoted)
  return `p=\ntrap 'kill $p 2>/dev/null; exit 143' TERM\n${words.map(quoted).join(' ')} <${input} >${out} 2>${err} & p=$!\nwait $p; c=$?\ntrap - TERM\necho $p $c\n`
}
