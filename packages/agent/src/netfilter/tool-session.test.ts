import { describe, expect, it } from 'vitest'
import type { ProcessHandlers, ProcessStarter } from '../exec.js'
import { NFT_SESSION } from './session-protocol.js'
import { SessionUnavailable, ToolSession } from './tool-session.js'

/**
 * Processes started by the session, as `nft -i` answers: each line written is a command, and a
 * mark gets the syntax error that names it. What the real tool does is test/kernel's.
 */
function processes(opts: { readonly fails?: (line: string) => boolean; mute?: boolean } = {}) {
  const started: {
    pid: number
    on: ProcessHandlers
    written: string[]
    killed: boolean
  }[] = []
  const start: ProcessStarter = (_cmd, _args, on) => {
    const p = { pid: 500 + started.length, on, written: [] as string[], killed: false }
    started.push(p)
    return {
      pid: p.pid,
      write: (text) => {
        p.written.push(text)
        if (opts.mute) return
        for (const line of text.trimEnd().split('\n')) {
          if (line.startsWith('palisade-session-mark-'))
            on.stderr(Buffer.from(`Error: syntax error\n${line}\n ^\n`))
          else if (opts.fails?.(line)) on.stderr(Buffer.from(`Error: no\n${line}\n^\n`))
        }
      },
      kill: () => {
        p.killed = true
      },
    }
  }
  return { start, started }
}

const SCRIPT = 'add element inet palisade s { 1.2.3.4 }\n'

describe('ToolSession', () => {
  it('starts the tool once and answers each request in turn', async () => {
    const { start, started } = processes({ fails: (l) => l.includes('9.9.9.9') })
    const s = new ToolSession(NFT_SESSION, start)
    const [a, b] = await Promise.all([s.run(SCRIPT), s.run(SCRIPT.replace('1.2.3.4', '9.9.9.9'))])
    expect(a).toEqual({ code: 0, stdout: '', stderr: '' })
    expect(b?.code).toBe(1)
    expect(b?.stderr).toContain('9.9.9.9')
    expect(started).toHaveLength(1)
    expect(started[0]?.written).toEqual([
      `${SCRIPT}palisade-session-mark-1\n`,
      `${SCRIPT.replace('1.2.3.4', '9.9.9.9')}palisade-session-mark-2\n`,
    ])
    expect(s.pid).toBe(500)
  })

  it('fails the request the tool died during, and starts it again for the next', async () => {
    const opts = { mute: false }
    const { start, started } = processes(opts)
    const s = new ToolSession(NFT_SESSION, start)
    await s.run(SCRIPT)
    const first = started[0]
    // Died with the next request written, its answer begun but not given.
    opts.mute = true
    const pending = s.run(SCRIPT)
    while (first?.written.length !== 2) await new Promise((r) => setImmediate(r))
    first.on.stderr(Buffer.from('Error: element does not exist\n'))
    first.on.close(null, 'SIGKILL')
    await expect(pending).rejects.toBeInstanceOf(SessionUnavailable)
    expect(s.pid).toBeUndefined()
    opts.mute = false
    // What the dead one wrote last is not taken as a part of the new one's answer.
    expect(await s.run(SCRIPT)).toEqual({ code: 0, stdout: '', stderr: '' })
    expect(started).toHaveLength(2)
    expect(s.pid).toBe(501)
  })

  it('ends a tool that does not answer in time and fails the request', async () => {
    const started: { killed: boolean }[] = []
    const silent: ProcessStarter = () => {
      const p = { killed: false }
      started.push(p)
      return { pid: 1, write: () => undefined, kill: () => void (p.killed = true) }
    }
    const s = new ToolSession(NFT_SESSION, silent, 1)
    await expect(s.run(SCRIPT)).rejects.toThrow('did not answer')
    expect(started).toEqual([{ killed: true }])
  })

  it('gives up a tool that cannot start, after three tries', async () => {
    let tries = 0
    const missing: ProcessStarter = (_cmd, _args, on) => {
      tries++
      return {
        write: () => queueMicrotask(() => on.error(new Error('spawn nft ENOENT'))),
        kill: () => undefined,
      }
    }
    const s = new ToolSession(NFT_SESSION, missing)
    for (let i = 0; i < 3; i++) await expect(s.run(SCRIPT)).rejects.toThrow('ENOENT')
    expect(s.usable).toBe(false)
    await expect(s.run(SCRIPT)).rejects.toThrow('not in use')
    expect(tries).toBe(3)
  })

  it('warm starts the tool once, ahead of the first request', async () => {
    const { start, started } = processes()
    const s = new ToolSession(NFT_SESSION, start)
    s.warm()
    s.warm()
    expect(started).toHaveLength(1)
    expect(started[0]?.written).toEqual([])
    await s.run(SCRIPT)
    expect(started).toHaveLength(1)
    started[0]?.on.close(0, null)
    s.warm()
    expect(started).toHaveLength(2)
    s.close()
    s.warm()
    expect(started).toHaveLength(2)
  })

  it('ends the tool when closed, and takes no request after', async () => {
    const { start, started } = processes()
    const s = new ToolSession(NFT_SESSION, start)
    await s.run(SCRIPT)
    s.close()
    expect(started[0]?.killed).toBe(true)
    expect(s.usable).toBe(false)
    await expect(s.run(SCRIPT)).rejects.toBeInstanceOf(SessionUnavailable)
    expect(started).toHaveLength(1)
  })
})
