import { existsSync, readFileSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { ProcessHandlers, ProcessStarter } from '../exec.js'
import { NFT_SESSION } from './session-protocol.js'
import { SessionUnavailable, ToolSession } from './tool-session.js'

/**
 * Processes started by the session, as `nft -i` answers: each line written is a command (an
 * include runs the file it names, as it is then), and a mark gets the syntax error that names
 * it, on the one stream it answers on. What the real tool does is test/kernel's.
 */
function processes(opts: { readonly fails?: (script: string) => boolean; mute?: boolean } = {}) {
  const started: {
    pid: number
    on: ProcessHandlers
    written: string[]
    /** The scripts its includes read. */
    read: string[]
    killed: boolean
  }[] = []
  const start: ProcessStarter = (_cmd, _args, on) => {
    const p = {
      pid: 500 + started.length,
      on,
      written: [] as string[],
      read: [] as string[],
      killed: false,
    }
    started.push(p)
    return {
      pid: p.pid,
      write: (text) => {
        p.written.push(text)
        if (opts.mute) return
        for (const line of text.trimEnd().split('\n')) {
          const included = /^include "(.*)"$/.exec(line)?.[1]
          if (included !== undefined) {
            const script = readFileSync(included, 'utf8')
            p.read.push(script)
            if (opts.fails?.(script)) on.stdout(Buffer.from(`${included}:1:1-3: Error: no\n`))
          } else if (line.startsWith('palisade-session-mark-'))
            on.stdout(Buffer.from(`Error: syntax error\n${line}\n ^\n`))
        }
      },
      kill: () => {
        p.killed = true
      },
    }
  }
  return { start, started }
}

/** The sessions made, closed after each test: a session removes its script directory. */
const made: ToolSession[] = []
afterEach(() => {
  for (const s of made.splice(0)) s.close()
})
const session = (...args: ConstructorParameters<typeof ToolSession>): ToolSession => {
  const s = new ToolSession(...args)
  made.push(s)
  return s
}

const SCRIPT = 'add element inet palisade s { 1.2.3.4 }\n'

describe('ToolSession', () => {
  it('ends the process soon after a request that asks it, and starts another', async () => {
    vi.useFakeTimers()
    try {
      const { start, started } = processes()
      const s = session(NFT_SESSION, start)
      const [a, b] = await Promise.all([s.run(SCRIPT, { restartAfter: true }), s.run(SCRIPT)])
      // What follows at once (the listing that verifies an apply) finds it running.
      expect([a.pid, b.pid]).toEqual([500, 500])
      expect(started.map((p) => p.killed)).toEqual([false])
      await vi.advanceTimersByTimeAsync(1000)
      expect(started.map((p) => p.killed)).toEqual([true, false])
      // Its end is not the session's failure; the next request goes to the one started.
      started[0]?.on.close(null, 'SIGTERM')
      expect(s.usable).toBe(true)
      expect((await s.run(SCRIPT)).pid).toBe(501)
    } finally {
      vi.useRealTimers()
    }
  })

  it('waits for an answer under way before it ends the process', async () => {
    vi.useFakeTimers()
    try {
      const { start, started } = processes({ mute: true })
      const s = session(NFT_SESSION, start, 60_000)
      const answer = (n: number) =>
        started[0]?.on.stdout(Buffer.from(`Error: syntax error\npalisade-session-mark-${n}\n ^\n`))
      const first = s.run(SCRIPT, { restartAfter: true })
      await vi.advanceTimersByTimeAsync(0)
      answer(1)
      await first
      const busy = s.run(SCRIPT)
      await vi.advanceTimersByTimeAsync(2500)
      expect(started.map((p) => p.killed)).toEqual([false])
      answer(2)
      expect((await busy).pid).toBe(500)
      await vi.advanceTimersByTimeAsync(1000)
      expect(started.map((p) => p.killed)).toEqual([true, false])
    } finally {
      vi.useRealTimers()
    }
  })

  it('starts the tool once and answers each request in turn', async () => {
    const { start, started } = processes({ fails: (script) => script.includes('9.9.9.9') })
    const s = session(NFT_SESSION, start)
    const [a, b] = await Promise.all([s.run(SCRIPT), s.run(SCRIPT.replace('1.2.3.4', '9.9.9.9'))])
    expect(a).toEqual({ code: 0, stdout: '', stderr: '', pid: 500 })
    expect(b).toEqual({ code: 1, stdout: '', stderr: '/dev/stdin:1:1-3: Error: no\n', pid: 500 })
    expect(started).toHaveLength(1)
    const file = /"(.*)"/.exec(started[0]?.written[0] ?? '')?.[1] ?? ''
    expect(started[0]?.written).toEqual([
      `include "${file}"\npalisade-session-mark-1\n`,
      `include "${file}"\npalisade-session-mark-2\n`,
    ])
    // Each request's script was in the file when the tool read it.
    expect(started[0]?.read).toEqual([SCRIPT, SCRIPT.replace('1.2.3.4', '9.9.9.9')])
    expect(s.pid).toBe(500)
    // Nobody but our user can read the directory, or put another script in its place.
    expect(statSync(dirname(file)).mode & 0o077).toBe(0)
    expect(statSync(file).mode & 0o077).toBe(0)
    s.close()
    expect(existsSync(file)).toBe(false)
  })

  it('fails the request the tool died during, and starts it again for the next', async () => {
    const opts = { mute: false }
    const { start, started } = processes(opts)
    const s = session(NFT_SESSION, start)
    await s.run(SCRIPT)
    const first = started[0]
    // Died with the next request written, its answer begun but not given.
    opts.mute = true
    const pending = s.run(SCRIPT)
    while (first?.written.length !== 2) await new Promise((r) => setImmediate(r))
    first.on.stdout(Buffer.from('Error: element does not exist\n'))
    first.on.close(null, 'SIGKILL')
    await expect(pending).rejects.toBeInstanceOf(SessionUnavailable)
    expect(s.pid).toBeUndefined()
    opts.mute = false
    // What the dead one wrote last is not taken as a part of the new one's answer.
    expect(await s.run(SCRIPT)).toEqual({ code: 0, stdout: '', stderr: '', pid: 501 })
    expect(started).toHaveLength(2)
    expect(s.pid).toBe(501)
  })

  it('gives up when it cannot hand the tool its script, for the tool run once', async () => {
    const { start, started } = processes()
    const unnamed = {
      ...NFT_SESSION,
      request: () => {
        throw new Error('no path for it')
      },
    }
    const s = session(unnamed, start)
    await expect(s.run(SCRIPT)).rejects.toThrow('cannot hand nft its script (no path for it)')
    expect(s.usable).toBe(false)
    await expect(s.run(SCRIPT)).rejects.toBeInstanceOf(SessionUnavailable)
    expect(started).toHaveLength(0)
  })

  it('takes a listing of megabytes in small chunks, a character split between two whole', async () => {
    const listing = `{"nftables": [{"rule": {"comment": "${'é'.repeat(1_500_000)}"}}]}\n`
    const bytes = Buffer.from(`${listing}Error: syntax error\npalisade-session-mark-1\n ^\n`)
    const chunked: ProcessStarter = (_cmd, _args, on) => ({
      pid: 9,
      // 65,535 bytes a chunk: odd, so each chunk ends within a two-byte character.
      write: () => {
        for (let at = 0; at < bytes.length; at += 65_535) on.stdout(bytes.subarray(at, at + 65_535))
      },
      kill: () => undefined,
    })
    const s = session(NFT_SESSION, chunked)
    const pending = s.run('list ruleset\n')
    expect(await pending).toEqual({ code: 0, stdout: listing, stderr: '', pid: 9 })
    s.close()
  })

  it('ends a tool that does not answer in time and fails the request', async () => {
    const started: { killed: boolean }[] = []
    const silent: ProcessStarter = () => {
      const p = { killed: false }
      started.push(p)
      return { pid: 1, write: () => undefined, kill: () => void (p.killed = true) }
    }
    const s = session(NFT_SESSION, silent, 1)
    // It may have made the change before it was ended: its pid is told.
    await expect(s.run(SCRIPT)).rejects.toEqual(
      new SessionUnavailable('the nft session did not answer', 1),
    )
    await expect(s.run(SCRIPT)).rejects.toHaveProperty('pid', 1)
    expect(started).toEqual([{ killed: true }, { killed: true }])
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
    const s = session(NFT_SESSION, missing)
    for (let i = 0; i < 3; i++) await expect(s.run(SCRIPT)).rejects.toThrow('ENOENT')
    expect(s.usable).toBe(false)
    await expect(s.run(SCRIPT)).rejects.toThrow('not in use')
    expect(tries).toBe(3)
  })

  it('warm starts the tool once, ahead of the first request', async () => {
    const { start, started } = processes()
    const s = session(NFT_SESSION, start)
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
    const s = session(NFT_SESSION, start)
    await s.run(SCRIPT)
    s.close()
    expect(started[0]?.killed).toBe(true)
    expect(s.usable).toBe(false)
    await expect(s.run(SCRIPT)).rejects.toBeInstanceOf(SessionUnavailable)
    expect(started).toHaveLength(1)
  })
})
