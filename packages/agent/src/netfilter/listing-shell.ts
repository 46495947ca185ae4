import { mkdtempSync, rmSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ProcessStarter, RunResult } from '../exec.js'
import { SHELL_SESSION } from './session-protocol.js'
import { SessionUnavailable, ToolSession } from './tool-session.js'

/**
 * Listings (fixed words, no input, no change made) run by a shell kept running instead of a
 * process the agent starts for each. Node's `spawn` holds the event loop until the kernel has
 * executed the tool: 6-25 ms a tool on this kernel, more as the agent's memory grows, several
 * times for each read of the iptables backends and for every look. The shell starts the tools
 * of one request side by side, and the agent waits for none of it.
 *
 * Listings asked for in one turn of the event loop (a read's two `iptables-save` and its ipset
 * listing) go to the shell as one request; requests take turns. Each listing's output goes to
 * a file of its own in a directory readable by our user alone (made when first needed, removed
 * by `close`); the shell answers with the exit codes.
 */
export class ListingShell {
  readonly #session: ToolSession
  #waiting: Listing[] = []
  #dir: string | undefined

  constructor(start: ProcessStarter, timeoutMs?: number) {
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
  run(cmd: string, args: readonly string[]): Promise<RunResult | undefined> {
    return new Promise((resolve, reject) => {
      if (this.#waiting.length === 0) queueMicrotask(() => void this.#send())
      this.#waiting.push({ words: [cmd, ...args], resolve, reject })
    })
  }

  close(): void {
    this.#session.close()
    if (this.#dir !== undefined) rmSync(this.#dir, { recursive: true, force: true })
  }

  async #send(): Promise<void> {
    const batch = this.#waiting
    this.#waiting = []
    try {
      this.#dir ??= mkdtempSync(join(tmpdir(), 'palisade-listings-'))
      const dir = this.#dir
      const files = batch.map((_, i) => join(dir, `${i}.out`))
      const answer = await this.#session.run(listingScript(batch, files))
      const codes = answer.stdout.trim().split(' ').map(Number)
      if (codes.length !== batch.length)
        throw new SessionUnavailable(`the shell answered ${JSON.stringify(answer.stdout)}`)
      // Read before the next request, which writes the same files.
      const outputs = await Promise.all(
        files.map((f, i) => (codes[i] === 0 ? readFile(f, 'utf8') : Promise.resolve(undefined))),
      )
      batch.forEach((l, i) => {
        const stdout = outputs[i]
        l.resolve(stdout === undefined ? undefined : { code: 0, stdout, stderr: '' })
      })
    } catch (e) {
      const why = e instanceof SessionUnavailable ? e : new SessionUnavailable(String(e))
      for (const l of batch) l.reject(why)
    }
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
 * one line, in order.
 */
export function listingScript(
  listings: readonly { readonly words: readonly string[] }[],
  files: readonly string[],
): string {
  const started = listings.map(
    (l, i) =>
      `${l.words.map(quoted).join(' ')} </dev/null >${quoted(files[i] ?? '')} 2>/dev/null & p${i}=$!\n`,
  )
  const waited = listings.map((_, i) => `wait $p${i}; c${i}=$?\n`)
  return `${started.join('')}${waited.join('')}echo ${listings.map((_, i) => `$c${i}`).join(' ')}\n`
}
