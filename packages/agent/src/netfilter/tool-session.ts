import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ProcessStarter, StartedProcess } from '../exec.js'
import type { SessionAnswer, SessionTool } from './session-protocol.js'

/** A session that could not answer: the caller runs the tool once instead. */
export class SessionUnavailable extends Error {}

/** A session that failed to start (or died at once) this many times in a row is given up. */
const MAX_FAILED_STARTS = 3

/**
 * A tool that ran a script larger than this is ended once it answered: the memory it took stays
 * with it otherwise (nft kept 45 MB after an apply of 100,000 addresses, 5 MB before). The next
 * request, or `warm`, starts it again.
 */
const MAX_KEPT_SCRIPT = 1024 * 1024

/**
 * One tool kept running, reading commands on stdin (see session-protocol.ts), one request at a
 * time. It is started by `warm` or the first request, and again after it died; a request
 * it cannot answer (it died, or did not answer within the time allowed, and was then ended)
 * rejects with SessionUnavailable, and the caller runs the one-shot tool: the change is made by
 * one or the other, and read back or checked as either way. `close` ends it for good.
 *
 * A tool that reads its script from a file gets it in a directory of the session's own, made
 * when first needed, readable by our user alone (`mkdtemp`), and removed by `close`; one left by
 * a process that is gone (killed before its close) is removed when the next is made.
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
        readonly retire: boolean
        readonly resolve: (a: SessionAnswer) => void
        readonly reject: (e: Error) => void
      }
    | undefined
  #queue: Promise<unknown> = Promise.resolve()
  #dir: string | undefined

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
   * pid of the process that said it (the kernel's change events name it).
   */
  run(script: string): Promise<SessionAnswer & { readonly pid?: number }> {
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
    if (this.#dir !== undefined) rmSync(this.#dir, { recursive: true, force: true })
  }

  #request(script: string): Promise<SessionAnswer & { readonly pid?: number }> {
    if (!this.usable) throw new SessionUnavailable(`the ${this.tool.name} session is not in use`)
    const proc = this.#proc ?? this.#spawn()
    const mark = `palisade-session-mark-${++this.#marks}`
    const file = this.tool.viaFile ? this.#write(script) : undefined
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this.#end(new SessionUnavailable(`the ${this.tool.name} session did not answer`)),
        this.timeoutMs,
      )
      this.#pending = {
        mark,
        file,
        retire: script.length > MAX_KEPT_SCRIPT,
        resolve: (a) => {
          clearTimeout(timer)
          resolve(proc.pid === undefined ? a : { ...a, pid: proc.pid })
        },
        reject: (e) => {
          clearTimeout(timer)
          reject(e)
        },
      }
      proc.write(this.tool.request(script, mark, file))
    })
  }

  /** Writes `script` to the session's file, which the tool reads before the next request. */
  #write(script: string): string {
    try {
      this.#dir ??= newScriptDir()
      const file = join(this.#dir, `${this.tool.name}.script`)
      writeFileSync(file, script, { mode: 0o600 })
      return file
    } catch (e) {
      // Made again for the next request (a process in another pid namespace that shares /tmp
      // takes ours for one gone, and removes it).
      this.#dir = undefined
      throw new SessionUnavailable(`cannot write the ${this.tool.name} script: ${String(e)}`)
    }
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
    const got = this.tool.answer(this.#text, p.mark, p.file)
    if (!got) return
    this.#text = got.rest
    this.#pending = undefined
    this.#answered = true
    this.#failedStarts = 0
    if (p.retire) this.#end(new SessionUnavailable(`the ${this.tool.name} session was retired`))
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

const SCRIPT_DIR = /^palisade-session-(\d+)-/

/** A directory for scripts, named for this process; those of processes gone are removed. */
function newScriptDir(): string {
  for (const name of readdirSync(tmpdir())) {
    const pid = Number(SCRIPT_DIR.exec(name)?.[1] ?? process.pid)
    if (pid !== process.pid && !alive(pid))
      rmSync(join(tmpdir(), name), { recursive: true, force: true })
  }
  return mkdtempSync(join(tmpdir(), `palisade-session-${process.pid}-`))
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    // EPERM: it runs, as another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}
