import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { runLocal, startLocal } from './exec.js'

describe('runLocal', () => {
  it('answers with the exit code, output and pid of the command', async () => {
    const r = await runLocal('sh', ['-c', 'echo out; echo err >&2; exit 3'])
    expect(r).toMatchObject({ code: 3, stdout: 'out\n', stderr: 'err\n' })
    expect(r.pid).toBeGreaterThan(0)
  })

  it('ends the command when its signal aborts, and rejects with the abort', async () => {
    const ac = new AbortController()
    const running = runLocal('sleep', ['60'], { signal: ac.signal })
    ac.abort()
    await expect(running).rejects.toMatchObject({ name: 'AbortError' })
  })
})

describe('startLocal', () => {
  /** `sleep 60` started, and the signal it ended by once it closed. */
  function sleeper() {
    let closed: (signal: string | null) => void = () => undefined
    const ended = new Promise<string | null>((r) => (closed = r))
    const p = startLocal('sleep', ['60'], {
      stdout: () => undefined,
      stderr: () => undefined,
      error: () => undefined,
      close: (_code, signal) => closed(signal),
    })
    return { p, ended }
  }

  it('ends a stopped process it was asked to end, which SIGTERM alone leaves', async () => {
    const { p, ended } = sleeper()
    expect(p.pid).toBeGreaterThan(0)
    process.kill(p.pid ?? 0, 'SIGSTOP')
    // Stopped before it is asked to end: a SIGTERM pending beside the SIGSTOP is taken first.
    while (!/^\d+ \(.*\) T /.test(readFileSync(`/proc/${p.pid}/stat`, 'utf8')))
      await new Promise((r) => setTimeout(r, 5))
    p.kill()
    expect(await ended).toBe('SIGKILL')
  })

  it('ends a running process by SIGTERM', async () => {
    const { p, ended } = sleeper()
    p.kill()
    expect(await ended).toBe('SIGTERM')
  })
})
