import { describe, expect, it } from 'vitest'
import { runLocal } from './exec.js'

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
