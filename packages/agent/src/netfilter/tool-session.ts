import type { ProcessStarter, StartedProcess } from '../exec.js'
import type { SessionAnswer, SessionTool } from './session-protocol.js'

/** A session that could not answer: the caller runs the tool once instead. */
export class SessionUnavailable extends Error {}

/** A session that failed to start (or died at once) this many times in a row is given up. */
const MAX_FAILED_STARTS = 3

/**
 * One tool kept running, reading commands on stdin (see session-protocol.ts), one request at a
 * time. It is started by `warm` or the first request, and again after it died; a request
 * it cannot answer (it died, or did not answer within the time allowed, and was then ended)
 * rejects with SessionUnavailable, and the caller runs the one-shot tool: the change is made by
 * one or the other, and read back or checked as either way. `close` ends it for good.
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
        readonly resolve: (a: SessionAnswer) => void
        readonly reject: (e: Error) => void
      }
    | undefined
  #queue: Promise<unknown> = Promise.resolve()

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

  /** Runs `script` (what the one-shot tool would read on stdin) and returns what it said. */
  run(script: string): Promise<SessionAnswer> {
    const next = this.#queue.then(() => this.#request(script))
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
    this.#end(new SessionUnavailable(`the ${this.tool.name} session was closed`))
  }

  #request(script: string): Promise<SessionAnswer> {
    if (!this.usable) throw new SessionUnavailable(`the ${this.tool.name} session is not in use`)
    const proc = this.#proc ?? this.#spawn()
    const mark = `palisade-session-mark-${++this.#marks}`
    return new Promise<SessionAnswer>((resolve, reject) => {
      const timer = setTimeout(
        () => this.#end(new SessionUnavailable(`the ${this.tool.name} session did not answer`)),
        this.timeoutMs,
      )
      this.#pending = {
        mark,
        resolve: (a) => {
          clearTimeout(timer)
          resolve(a)
        },
        reject: (e) => {
          clearTimeout(timer)
          reject(e)
        },
      }
      proc.write(this.tool.request(script, mark))
    })
  }

  #spawn(): StartedProcess {
    this.#text = ''
    this.#answered = false
    const { tool } = this
    const own = (f: () => void) => () => {
      if (this.#proc === proc) f()
    }
    const proc: StartedProcess = this.start(tool.cmd, tool.args, {
      stdout: (b) => tool.stream === 'stdout' && own(() => this.#take(b.toString()))(),
      stderr: (b) => tool.stream === 'stderr' && own(() => this.#take(b.toString()))(),
      error: (e) => own(() => this.#died(`cannot run ${tool.name}: ${e.message}`))(),
      close: (code, signal) =>
        own(() => this.#died(`${tool.name} ended (${signal ?? `code ${code}`})`))(),
    })
    this.#proc = proc
    return proc
  }

  #take(chunk: string): void {
    this.#text += chunk
    const p = this.#pending
    if (!p) return
    const got = this.tool.answer(this.#text, p.mark)
    if (!got) return
    this.#text = got.rest
    this.#pending = undefined
    this.#answered = true
    this.#failedStarts = 0
    p.resolve(got.answer)
  }

  #died(why: string): void {
    if (!this.#answered) this.#failedStarts++
    this.#proc = undefined
    this.#end(new SessionUnavailable(why))
  }

  /** Ends the process (if running) and fails the request waiting on it. */
  #end(e: Error): void {
    const proc = this.#proc
    this.#proc = undefined
    proc?.kill()
    const p = this.#pending
    this.#pending = undefined
    p?.reject(e)
  }
}
