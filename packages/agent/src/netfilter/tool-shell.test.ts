import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { ProcessStarter, StartedProcess } from '../exec.js'
import { startLocal } from '../exec.js'
import {
  commitScript,
  isShellCommit,
  isShellListing,
  listingScript,
  ToolShell,
} from './tool-shell.js'
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

const made: ToolShell[] = []
afterEach(() => {
  for (const s of made.splice(0)) s.close()
})
const shell = (start: ProcessStarter, timeoutMs?: number) => {
  const s = new ToolShell(start, timeoutMs)
  made.push(s)
  return s
}

describe('ToolShell', () => {
  it('runs listings asked for in one turn as one request, each answered with its own output', async () => {
    const { start, written } = shells()
    const s = shell(start)
    const [a, b, c] = await Promise.all([
      s.list('printf', ['%s\\n', 'first']),
      s.list('printf', ['%s', 'second, no newline']),
      s.list('sh', ['-c', 'sleep 0.05; echo third']),
    ])
    expect([a, b, c]).toEqual([
      { code: 0, stdout: 'first\n', stderr: '' },
      { code: 0, stdout: 'second, no newline', stderr: '' },
      { code: 0, stdout: 'third\n', stderr: '' },
    ])
    expect(written).toHaveLength(1)
    // Asked for later: another request, to the same shell.
    expect(await s.list('echo', ['again'])).toEqual({ code: 0, stdout: 'again\n', stderr: '' })
    expect(written).toHaveLength(2)
  })

  it('answers a failed listing with nothing, the others in its request as they are', async () => {
    const { start } = shells()
    const s = shell(start)
    const [bad, missing, good] = await Promise.all([
      s.list('sh', ['-c', 'echo partial; exit 3']),
      s.list('/nonexistent/palisade-tool', []),
      s.list('echo', ['fine']),
    ])
    expect(bad).toBeUndefined()
    expect(missing).toBeUndefined()
    expect(good?.stdout).toBe('fine\n')
  })

  it('passes every word as it is: nothing in one is run by the shell', async () => {
    const { start } = shells()
    const s = shell(start)
    const words = ["it's", '$(echo no)', '`echo no`', 'a; echo no', 'two\nlines', '*', '"', '\\']
    const out = await s.list('printf', ['%s|', ...words])
    expect(out?.stdout).toBe(words.map((w) => `${w}|`).join(''))
  })

  it('hands over a listing of megabytes whole', async () => {
    const { start } = shells()
    const s = shell(start)
    const out = await s.list('sh', ['-c', 'yes 0123456789abcdef | head -c 3000000'])
    expect(out?.stdout.length).toBe(3_000_000)
    expect(out?.stdout.endsWith('0123456789abcdef\n'.slice(0, 3_000_000 % 17))).toBe(true)
  })

  it('fails the request of a shell that died, and starts another for the next', async () => {
    const { start, procs } = shells()
    const s = shell(start)
    const pending = s.list('sleep', ['2'])
    await new Promise((r) => setTimeout(r, 100))
    procs[0]?.kill()
    await expect(pending).rejects.toBeInstanceOf(SessionUnavailable)
    expect((await s.list('echo', ['back']))?.stdout).toBe('back\n')
    expect(procs).toHaveLength(2)
  })

  it('ends a shell that does not answer in time', async () => {
    const { start } = shells()
    const s = shell(start, 200)
    await expect(s.list('sleep', ['2'])).rejects.toThrow(/did not answer/)
  })

  it('keeps the outputs in a directory of its own, each deleted once read, which close removes', async () => {
    const { start, written } = shells()
    const s = shell(start)
    await s.list('echo', ['x'])
    const file = /'([^']*palisade-session-[^']*\.out)'/.exec(written[0] ?? '')?.[1] ?? ''
    const dir = dirname(file)
    expect(statSync(dir).mode & 0o777).toBe(0o700)
    expect(existsSync(file)).toBe(false)
    expect(readdirSync(dir)).toEqual([])
    s.close()
    expect(existsSync(dir)).toBe(false)
    expect(s.usable).toBe(false)
    await expect(s.list('echo', ['x'])).rejects.toBeInstanceOf(SessionUnavailable)
  })

  it('ends the listings of a shell it ended, and their outputs never reach a later one', async () => {
    const { start } = shells()
    // Room for a shell to start again on a loaded machine (300 ms was not, in a full run), and
    // the first listing still running when the later one is asked, had it not been ended.
    const s = shell(start, 1500)
    const marker = `palisade-test-${process.pid}-${Date.now()}`
    await expect(s.list('sh', ['-c', `sleep 4; echo late`, marker])).rejects.toThrow(
      /did not answer/,
    )
    const later = await s.list('sh', ['-c', 'sleep 0.1; echo on time'])
    expect(later?.stdout).toBe('on time\n')
    // The first listing was ended with its shell: nothing of it runs.
    const running = await s.list('pgrep', ['-f', marker])
    expect(running).toBeUndefined()
  })

  it('is given up, and makes no directory, once closed with listings waiting', async () => {
    const { start, written } = shells()
    const s = shell(start)
    const pending = s.list('echo', ['x'])
    s.close()
    await expect(pending).rejects.toBeInstanceOf(SessionUnavailable)
    expect(written).toEqual([])
  })
})

describe('ToolShell commits', () => {
  it('answers what the tool printed, its exit code and its own pid, its input given', async () => {
    const { start, procs } = shells()
    const s = shell(start)
    const r = await s.commit('sh', ['-c', 'cat; echo "pid $$" >&2; exit 3'], 'line one\nline two\n')
    expect(r).toEqual({
      code: 3,
      stdout: 'line one\nline two\n',
      stderr: `pid ${r.pid}\n`,
      pid: r.pid,
    })
    expect(Number.isInteger(r.pid)).toBe(true)
    expect(r.pid).not.toBe(procs[0]?.pid)
  })

  it('hands the input in a file only our user can read, removed with the outputs once answered', async () => {
    const { start, written } = shells()
    const s = shell(start)
    const r = await s.commit('stat', ['-L', '-c', '%a', '/proc/self/fd/0'], 'secret')
    expect(r.stdout).toBe('600\n')
    const dir = dirname(/<'([^']*)'/.exec(written[0] ?? '')?.[1] ?? '')
    expect(readdirSync(dir)).toEqual([])
  })

  it('runs after the listings asked for before it, in the same turn', async () => {
    const { start } = shells()
    const s = shell(start)
    const dir = mkdtempSync(join(tmpdir(), 'palisade-test-'))
    const marker = join(dir, 'listed')
    try {
      const [, committed] = await Promise.all([
        s.list('sh', ['-c', `sleep 0.1; echo listed > ${marker}`]),
        s.commit('sh', ['-c', `cat ${marker}`], ''),
      ])
      expect(committed.stdout).toBe('listed\n')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('answers a failure for a commit its shell died during, ending the tool; commits through another the next time', async () => {
    const { start, procs } = shells()
    const s = shell(start)
    const marker = `palisade-test-commit-${process.pid}-${Date.now()}`
    const pending = s.commit('sh', ['-c', 'sleep 4; echo late', marker], '')
    await new Promise((r) => setTimeout(r, 200))
    procs[0]?.kill()
    const r = await pending
    expect(r.code).toBe(-1)
    expect(r.stderr).toMatch(/without its answer; it may have made its change/)
    expect((await s.commit('cat', [], 'back')).stdout).toBe('back')
    expect(procs).toHaveLength(2)
    // The first was ended with its shell.
    expect(await s.list('pgrep', ['-f', marker])).toBeUndefined()
  })

  it('refuses a commit once closed, without running it: the caller runs it once', async () => {
    const { start, written } = shells()
    const s = shell(start)
    s.close()
    await expect(s.commit('cat', [], 'x')).rejects.toBeInstanceOf(SessionUnavailable)
    expect(written).toEqual([])
  })

  it.each<[string, boolean]>([
    ['iptables-nft-restore --noflush', true],
    ['ip6tables-nft-restore --noflush', true],
    ['iptables-legacy-restore --noflush --wait 5', true],
    ['ip6tables-legacy-restore --noflush --wait 5', true],
    ['ipset restore', true],
    // Not commits of ours: run as tools of their own.
    ['iptables-nft-restore', false],
    ['iptables-legacy-restore --noflush', false],
    ['ipset restore -exist', false],
    ['nft -f -', false],
    ['iptables-nft-save -t filter', false],
  ])('%s: %s', (line, taken) => {
    const [cmd = '', ...args] = line.split(' ')
    expect(isShellCommit(cmd, args)).toBe(taken)
  })
})

describe('commitScript', () => {
  it('starts the tool in the background with its files, waits for it and prints its pid and code', () => {
    expect(commitScript(['ipset', "o'k"], ['/d/1.in', '/d/1.out', '/d/1.err'])).toBe(
      [
        'p=',
        "trap 'kill $p 2>/dev/null; exit 143' TERM",
        `'ipset' 'o'\\''k' <'/d/1.in' >'/d/1.out' 2>'/d/1.err' & p=$!`,
        'wait $p; c=$?',
        'trap - TERM',
        'echo $p $c',
        '',
      ].join('\n'),
    )
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
