import { existsSync, readdirSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { ProcessStarter, StartedProcess } from '../exec.js'
import { startLocal } from '../exec.js'
import { isShellListing, listingScript, ListingShell } from './listing-shell.js'
import { SHELL_SESSION } from './session-protocol.js'
import { SessionUnavailable } from './tool-session.js'

/** A real `sh`, with what was written to it and a way to kill it from outside. */
function shells() {
  const written: string[] = []
  const procs: StartedProcess[] = []
  const start: ProcessStarter = (cmd, args, on) => {
    const p = startLocal(cmd, args, on)
    procs.push(p)
    return {
      ...p,
      write: (text) => {
        written.push(text)
        p.write(text)
      },
    }
  }
  return { start, written, procs }
}

const made: ListingShell[] = []
afterEach(() => {
  for (const s of made.splice(0)) s.close()
})
const shell = (start: ProcessStarter, timeoutMs?: number) => {
  const s = new ListingShell(start, timeoutMs)
  made.push(s)
  return s
}

describe('ListingShell', () => {
  it('runs listings asked for in one turn as one request, each answered with its own output', async () => {
    const { start, written } = shells()
    const s = shell(start)
    const [a, b, c] = await Promise.all([
      s.run('printf', ['%s\\n', 'first']),
      s.run('printf', ['%s', 'second, no newline']),
      s.run('sh', ['-c', 'sleep 0.05; echo third']),
    ])
    expect([a, b, c]).toEqual([
      { code: 0, stdout: 'first\n', stderr: '' },
      { code: 0, stdout: 'second, no newline', stderr: '' },
      { code: 0, stdout: 'third\n', stderr: '' },
    ])
    expect(written).toHaveLength(1)
    // Asked for later: another request, to the same shell.
    expect(await s.run('echo', ['again'])).toEqual({ code: 0, stdout: 'again\n', stderr: '' })
    expect(written).toHaveLength(2)
  })

  it('answers a failed listing with nothing, the others in its request as they are', async () => {
    const { start } = shells()
    const s = shell(start)
    const [bad, missing, good] = await Promise.all([
      s.run('sh', ['-c', 'echo partial; exit 3']),
      s.run('/nonexistent/palisade-tool', []),
      s.run('echo', ['fine']),
    ])
    expect(bad).toBeUndefined()
    expect(missing).toBeUndefined()
    expect(good?.stdout).toBe('fine\n')
  })

  it('passes every word as it is: nothing in one is run by the shell', async () => {
    const { start } = shells()
    const s = shell(start)
    const words = ["it's", '$(echo no)', '`echo no`', 'a; echo no', 'two\nlines', '*', '"', '\\']
    const out = await s.run('printf', ['%s|', ...words])
    expect(out?.stdout).toBe(words.map((w) => `${w}|`).join(''))
  })

  it('hands over a listing of megabytes whole', async () => {
    const { start } = shells()
    const s = shell(start)
    const out = await s.run('sh', ['-c', 'yes 0123456789abcdef | head -c 3000000'])
    expect(out?.stdout.length).toBe(3_000_000)
    expect(out?.stdout.endsWith('0123456789abcdef\n'.slice(0, 3_000_000 % 17))).toBe(true)
  })

  it('fails the request of a shell that died, and starts another for the next', async () => {
    const { start, procs } = shells()
    const s = shell(start)
    const pending = s.run('sleep', ['2'])
    await new Promise((r) => setTimeout(r, 100))
    procs[0]?.kill()
    await expect(pending).rejects.toBeInstanceOf(SessionUnavailable)
    expect((await s.run('echo', ['back']))?.stdout).toBe('back\n')
    expect(procs).toHaveLength(2)
  })

  it('ends a shell that does not answer in time', async () => {
    const { start } = shells()
    const s = shell(start, 200)
    await expect(s.run('sleep', ['2'])).rejects.toThrow(/did not answer/)
  })

  it('keeps the outputs in a directory of its own, each deleted once read, which close removes', async () => {
    const { start, written } = shells()
    const s = shell(start)
    await s.run('echo', ['x'])
    const file = /'([^']*palisade-session-[^']*\.out)'/.exec(written[0] ?? '')?.[1] ?? ''
    const dir = dirname(file)
    expect(statSync(dir).mode & 0o777).toBe(0o700)
    expect(existsSync(file)).toBe(false)
    expect(readdirSync(dir)).toEqual([])
    s.close()
    expect(existsSync(dir)).toBe(false)
    expect(s.usable).toBe(false)
    await expect(s.run('echo', ['x'])).rejects.toBeInstanceOf(SessionUnavailable)
  })

  it('ends the listings of a shell it ended, and their outputs never reach a later one', async () => {
    const { start } = shells()
    // Room for a shell to start again on a loaded machine (300 ms was not, in a full run), and
    // the first listing still running when the later one is asked, had it not been ended.
    const s = shell(start, 1500)
    const marker = `palisade-test-${process.pid}-${Date.now()}`
    await expect(s.run('sh', ['-c', `sleep 4; echo late`, marker])).rejects.toThrow(
      /did not answer/,
    )
    const later = await s.run('sh', ['-c', 'sleep 0.1; echo on time'])
    expect(later?.stdout).toBe('on time\n')
    // The first listing was ended with its shell: nothing of it runs.
    const running = await s.run('pgrep', ['-f', marker])
    expect(running).toBeUndefined()
  })

  it('is given up, and makes no directory, once closed with listings waiting', async () => {
    const { start, written } = shells()
    const s = shell(start)
    const pending = s.run('echo', ['x'])
    s.close()
    await expect(pending).rejects.toBeInstanceOf(SessionUnavailable)
    expect(written).toEqual([])
  })
})

describe('listingScript', () => {
  it('starts each listing in the background, then waits for each and prints the codes', () => {
    expect(
      listingScript([{ words: ['ipset', 'list', '-t'] }, { words: ["o'k"] }], ['/d/0', '/d/1']),
    ).toBe(
      [
        `'ipset' 'list' '-t' </dev/null >'/d/0' 2>/dev/null & p0=$!`,
        `'o'\\''k' </dev/null >'/d/1' 2>/dev/null & p1=$!`,
        // ended meanwhile, the shell ends them first
        "trap 'kill $p0 $p1 2>/dev/null; exit 143' TERM",
        'wait $p0; c0=$?',
        'wait $p1; c1=$?',
        'trap - TERM',
        'echo $c0 $c1',
        '',
      ].join('\n'),
    )
  })
})

describe('the shell session protocol', () => {
  it('answers with what came before the mark', () => {
    const mark = 'palisade-session-mark-3'
    expect(SHELL_SESSION.request('true\n', mark)).toBe(`true\necho ${mark}\n`)
    expect(SHELL_SESSION.answer('0 1\n', mark)).toBeUndefined()
    expect(SHELL_SESSION.answer(`0 1\n${mark}\nnext`, mark)).toEqual({
      answer: { code: 0, stdout: '0 1\n', stderr: '' },
      rest: 'next',
    })
  })

  it.each<[string, boolean]>([
    ['iptables-nft-save -t filter', true],
    ['ip6tables-legacy-save -t filter', true],
    ['ipset list -t', true],
    ['ipset list -n', true],
    ['ipset save', true],
    // Not listings of ours, or not listings at all: run as tools of their own.
    ['iptables-nft-save', false],
    ['iptables-nft-save -t nat', false],
    ['iptables-nft-restore --noflush', false],
    ['ipset save palisade-0123456789-v4', false],
    ['ipset restore', false],
    ['nft -j list ruleset', false],
  ])('%s: %s', (line, taken) => {
    const [cmd = '', ...args] = line.split(' ')
    expect(isShellListing(cmd, args)).toBe(taken)
  })
})
