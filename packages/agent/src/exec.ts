import { spawn } from 'node:child_process'
import type { ToolFailure } from './tool-failure.js'
import { classifyToolFailure, describeToolFailure } from './tool-failure.js'

export interface RunResult {
  /** The process id, so changes it made can be recognised in `nft monitor` output. */
  readonly pid?: number
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

export interface RunOptions {
  readonly stdin?: string
  /** Kill the command after this long (default 30 s) so nothing hangs forever. */
  readonly timeoutMs?: number
  /** Kill the command when this aborts (its answer is no longer wanted); the run then rejects. */
  readonly signal?: AbortSignal
}

/** Runs a command with an argument array (never a shell string). */
export type Runner = (cmd: string, args: readonly string[], opts?: RunOptions) => Promise<RunResult>

/** The command is not installed (or not on PATH). */
export class ToolMissingError extends Error {
  constructor(readonly tool: string) {
    super(`${tool} is not installed (not found on PATH); install it or choose another --backend`)
  }
}

/**
 * A command failed. Its message holds only the classified failure (see tool-failure.ts), so it
 * may be sent to the policy server; `result.stderr` is for the local log only.
 */
export class CommandError extends Error {
  readonly failure: ToolFailure

  constructor(
    readonly cmd: string,
    readonly result: RunResult,
  ) {
    const failure = classifyToolFailure(result.stderr)
    super(`${cmd} failed (exit code ${result.code}): ${describeToolFailure(failure)}`)
    this.failure = failure
  }
}

/** The runner for this process's own network namespace. */
export const runLocal: Runner = (cmd, args, opts = {}) =>
  new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(opts.signal && { signal: opts.signal, killSignal: 'SIGKILL' as const }),
    })
    const out: Buffer[] = []
    const err: Buffer[] = []
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000)
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      reject(
        e.code === 'ENOENT'
          ? new ToolMissingError(cmd)
          : e.name === 'AbortError'
            ? e
            : new Error(`cannot run ${cmd}: ${e.message}`, { cause: e }),
      )
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const stderr =
        Buffer.concat(err).toString() + (signal ? `\nkilled by ${signal} after timeout` : '')
      resolve({
        ...(child.pid !== undefined && { pid: child.pid }),
        code: code ?? -1,
        stdout: Buffer.concat(out).toString(),
        stderr,
      })
    })
    child.stdin.on('error', () => undefined) // the command may exit before reading all of stdin
    child.stdin.end(opts.stdin ?? '')
  })

/** A runner whose commands run inside network namespace `ns` (as root). */
export const netnsRunner =
  (ns: string): Runner =>
  (cmd, args, opts) =>
    runLocal('ip', ['netns', 'exec', ns, cmd, ...args], opts)

/** What a long-running process reports, as it happens. */
export interface ProcessHandlers {
  readonly stdout: (chunk: Buffer) => void
  readonly stderr: (chunk: Buffer) => void
  /** It could not be started (or signalled). */
  readonly error: (e: Error) => void
  readonly close: (code: number | null, signal: string | null) => void
}

/** A long-running command: what it was started as, and the ways to feed and end it. */
export interface StartedProcess {
  /** The process id (undefined if it could not be started), as change events name it. */
  readonly pid?: number
  /** Writes to its standard input (a tool reading commands there). */
  write(text: string): void
  kill(): void
}

/**
 * Starts a long-running command (a monitor, a tool reading commands on stdin) with an argument
 * array; `kill` ends it (SIGTERM, then SIGKILL if it is still there 2 s later). Its stdin stays open until it is killed or this process exits, so a
 * tool reading commands there ends with the agent whatever the way the agent ends.
 */
export type ProcessStarter = (
  cmd: string,
  args: readonly string[],
  on: ProcessHandlers,
) => StartedProcess

/** How long a process `kill` ended has to go after SIGTERM before SIGKILL ends it. */
const KILL_AFTER_MS = 2000

/** The process starter for this process's own network namespace. */
export const startLocal: ProcessStarter = (cmd, args, on) => {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  child.stdout.on('data', on.stdout)
  child.stderr.on('data', on.stderr)
  child.on('error', on.error)
  child.on('close', on.close)
  // A write after it died is answered by its 'close': the error itself says nothing more.
  child.stdin.on('error', () => undefined)
  return {
    ...(child.pid !== undefined && { pid: child.pid }),
    write: (text) => void child.stdin.write(text),
    kill: () => {
      const gone = () => child.exitCode !== null || child.signalCode !== null
      if (gone()) return
      child.kill('SIGTERM')
      // A stopped process (SIGSTOP, a debugger) takes SIGTERM only once continued: left so, it
      // would stay for good, and a session ended for not answering starts another beside it.
      setTimeout(() => gone() || child.kill('SIGKILL'), KILL_AFTER_MS).unref()
    },
  }
}

/** Runs and throws a CommandError unless the command exits 0. */
export async function runChecked(
  run: Runner,
  cmd: string,
  args: readonly string[],
  opts?: RunOptions,
): Promise<string> {
  const r = await run(cmd, args, opts)
  if (r.code !== 0) throw new CommandError([cmd, ...args].join(' '), r)
  return r.stdout
}
