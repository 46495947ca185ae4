import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { StringDecoder } from 'node:string_decoder'
import type { ProcessStarter, StartedProcess } from '../exec.js'
import type { SessionAnswer, SessionTool } from './session-protocol.js'

/** A session that could not answer: the caller runs the tool once instead. */
export class SessionUnavailable extends Error {
  constructor(
    message: string,
    /** The process ended with the request, which may have made its change before it ended. */
    readonly pid?: number,
  ) {
    super(message)
  }
}

/** A session that failed to start (or died at once) this many times in a row is given up. */
const MAX_FAILED_STARTS = 3

/** The longest text a tool's answer ends with (see SessionTool.ending). */
const MAX_ENDING = 64

/** How long after its answer a process asked to restart (see ToolSession.run) is ended. */
const RESTART_AFTER_MS = 1000

/**
 * The time a request is allowed beyond the session's own, per MB of its script: nft commits
 * 4 MB a second here, and a host eight times slower still answers within it.
 */
const MS_PER_SCRIPT_MB = 2000

/**
 * One tool kept running, reading commands on stdin (see session-protocol.ts), one request at a
 * time. It is started by `warm` or the first request, and again after it died; a request
 * it cannot answer (it died, or did not answer within the time allowed, and was then ended)
 * rejects with SessionUnavailable, and the caller runs the one-shot tool: the change is made by
 * one or the other, and read back or checked as either way. `close` ends it for good.
 *
 * A tool that reads its script from a file gets it in a directory of the session's own, made
 * when first needed, readable by our user alone (`mkdtemp`), and removed by `close` (one left by
 * an agent killed goes with the private /tmp its systemd unit gives it). A session that cannot
 * hand its tool a script is given up, as one whose tool cannot start.
 */
export class ToolSession {
  #proc: StartedProcess | undefined
  #text = ''
  #marks = 0
  #failedStarts = 0
  /** Whether the process answered anything since it was started. */
  #answered = false
  #closed = false
  #pending:
    | {
        readonly mark: string
        readonly file: string | undefined
        readonly resolve: (a: SessionAnswer) => void
        readonly reject: (e: Error) => void
      }
    | undefined
  #queue: Promise<unknown> = Promise.resolve()
  #dir: string | undefined
  /** Whether what the pending request's answer ends with came. */
  #ended = false

  constructor(
    readonly tool: SessionTool,
    private readonly start: ProcessStarter,
    private readonly timeoutMs = 5000,
  ) {}

  /** The running process's id, as the kernel's change events name it. */
  get pid(): number | undefined {
    return this.#proc?.pid
  }

  /** Whether requests are still taken (not closed, not given up). */
  get usable(): boolean {
    return !this.#closed && this.#failedStarts < MAX_FAILED_STARTS
  }

  /**
   * Runs `script` (what the one-shot tool would read on stdin) and returns what it said, and the
   * pid of the process that said it (the kernel's change events name it). With `restartAfter`,
   * that process is ended soon after (not while it answers), and another started.
   */
  run(
    script: string,
    opts: { readonly restartAfter?: boolean } = {},
  ): Promise<SessionAnswer & { readonly pid?: number }> {
    const next = this.#queue.then(() => this.#request(script, opts.restartAfter === true))
    this.#queue = next.catch(() => undefined)
    return next
  }

  /**
   * Starts the tool now if it is not running, so that the next request does not wait for its
   * start (a tool's start is most of what a request would cost). Nothing waits for it.
   */
  warm(): void {
    if (this.usable && !this.#proc) this.#spawn()
  }

  close(): void {
    this.#closed = true
    this.#end(`the ${this.tool.name} session was closed`)
    if (this.#dir !== undefined) rmSync(this.#dir, { recursive: true, force: true })
  }

  #request(
    script: string,
    restartAfter: boolean,
  ): Promise<SessionAnswer & { readonly pid?: number }> {
    if (!this.usable) throw new SessionUnavailable(`the ${this.tool.name} session is not in use`)
    const mark = `palisade-session-mark-${++this.#marks}`
    const { file, text } = this.#requestFor(script, mark)
    const proc = this.#proc ?? this.#spawn()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this.#end(`the ${this.tool.name} session did not answer`),
        this.timeoutMs + (script.length / 1024 / 1024) * MS_PER_SCRIPT_MB,
      )
      this.#pending = {
        mark,
        file,
        resolve: (a) => {
          clearTimeout(timer)
          if (restartAfter) this.#restartWhenIdle(proc)
          resolve(proc.pid === undefined ? a : { ...a, pid: proc.pid })
        },
        reject: (e) => {
          clearTimeout(timer)
          reject(e)
        },
      }
      proc.write(text)
    })
  }

  /**
   * The session's own directory, readable by our user alone, made when first needed and removed
   * by `close`: where a tool that reads its script from a file finds it, and where a tool's
   * output may go. A session that cannot make it is given up.
   */
  workDir(): string {
    if (this.#closed) throw new SessionUnavailable(`the ${this.tool.name} session was closed`)
    try {
      this.#dir ??= mkdtempSync(join(tmpdir(), 'palisade-session-'))
    } catch (e) {
      this.#giveUp(`cannot make a directory for ${this.tool.name} (${(e as Error).message})`)
    }
    return this.#dir
  }

  /** What to write for `script`, once it is in the session's file where the tool reads it. */
  #requestFor(script: string, mark: string): { file?: string; text: string } {
    if (!this.tool.viaFile) return { text: this.tool.request(script, mark) }
    const file = join(this.workDir(), `${this.tool.name}.script`)
    try {
      writeFileSync(file, script, { mode: 0o600 })
      return { file, text: this.tool.request(script, mark, file) }
    } catch (e) {
      this.#giveUp(`cannot hand ${this.tool.name} its script (${(e as Error).message})`)
    }
  }

  /** Refuses every request from now on, and ends the tool if it runs. */
  #giveUp(why: string): never {
    this.#failedStarts = MAX_FAILED_STARTS
    this.#end(why)
    throw new SessionUnavailable(`${why}: given up`)
  }

  #spawn(): StartedProcess {
    this.#text = ''
    this.#ended = false
    // A character split between two chunks is put together again.
    const decoder = new StringDecoder('utf8')
    this.#answered = false
    const { tool } = this
    const own = (f: () => void) => () => {
      if (this.#proc === proc) f()
    }
    const proc: StartedProcess = this.start(tool.cmd, tool.args, {
      stdout: (b) => tool.stream === 'stdout' && own(() => this.#take(decoder.write(b)))(),
      stderr: (b) => tool.stream === 'stderr' && own(() => this.#take(decoder.write(b)))(),
      error: (e) => own(() => this.#died(`cannot run ${tool.name}: ${e.message}`))(),
      close: (code, signal) =>
        own(() => this.#died(`${tool.name} ended (${signal ?? `code ${code}`})`))(),
    })
    this.#proc = proc
    return proc
  }

  #take(chunk: string): void {
    const from = Math.max(0, this.#text.length - MAX_ENDING)
    this.#text += chunk
    const p = this.#pending
    if (!p) return
    // The answer is parsed once its end came, not at each chunk of a listing of megabytes.
    this.#ended ||= this.#text.includes(this.tool.ending(p.mark), from)
    if (!this.#ended) return
    const got = this.tool.answer(this.#text, p.mark, p.file)
    if (!got) return
    this.#text = got.rest
    this.#pending = undefined
    this.#ended = false
    this.#answered = true
    this.#failedStarts = 0
    p.resolve(got.answer)
  }

  /**
   * Ends `proc` RESTART_AFTER_MS after its answer, at a moment it has nothing to answer (the
   * listing that verifies an apply comes right after the apply), and starts another.
   */
  #restartWhenIdle(proc: StartedProcess): void {
    const timer = setTimeout(() => {
      if (this.#proc !== proc) return
      if (this.#pending) return this.#restartWhenIdle(proc)
      this.#proc = undefined
      proc.kill()
      try {
        this.warm()
      } catch {
        // Not started now (the system is out of processes or memory): the next request starts
        // it, and fails as a request does if it cannot.
      }
    }, RESTART_AFTER_MS)
    timer.unref()
  }

  #died(why: string): void {
    if (!this.#answered) this.#failedStarts++
    this.#end(why)
  }

  /** Ends the process (if running) and fails the request waiting on it. */
  #end(why: string): void {
    const proc = this.#proc
    this.#proc = undefined
    proc?.kill()
    const p = this.#pending
    this.#pending = undefined
    p?.reject(new SessionUnavailable(why, proc?.pid))
  }
}
