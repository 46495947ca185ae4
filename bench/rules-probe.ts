/**
 * Reading our rules from outside the agent, for benchmarks that time what the kernel holds
 * rather than what the agent says: a listing reader, and the CPU a process has used.
 */
import type { Runner } from '@palisade/agent'
import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'

export interface Reader {
  read(): Promise<string>
  stop(): void
}

const END = '#palisade-bench-read-end'

/**
 * Reads by `command` through one shell that stays running in the namespace (no `ip netns exec`
 * for each read), `extract` taking what is wanted from its output.
 */
export function shellReader(ns: string, command: string, extract: (out: string) => string): Reader {
  const child: ChildProcess = spawn('ip', ['netns', 'exec', ns, 'sh'], {
    stdio: ['pipe', 'pipe', 'ignore'],
  })
  let buffer = ''
  let answer: ((text: string) => void) | undefined
  child.stdout?.on('data', (b: Buffer) => {
    buffer += b.toString()
    const end = buffer.indexOf(`${END}\n`)
    if (end < 0 || !answer) return
    const text = buffer.slice(0, end)
    buffer = buffer.slice(end + END.length + 1)
    const a = answer
    answer = undefined
    a(extract(text))
  })
  return {
    read: () =>
      new Promise((resolve) => {
        answer = resolve
        child.stdin?.write(`${command}; echo '${END}'\n`)
      }),
    stop: () => void child.kill(),
  }
}

/**
 * Lists a chain by a terse `nft -t list ruleset`: nft 1.0.6 fetches every element of a table's
 * sets before it lists any of its chains (`list chain`, even terse, even `nft -i`, costs 0.5 to
 * 1 s with 100,000 addresses, and keeps a core busy), but not for a terse listing of the
 * ruleset (10 ms at any size). Reading through `list chain` made most of what a benchmark timed
 * at 100,000 peers the reader's own time.
 */
export function nftReader(ns: string, chain: string): Reader {
  const [family = '', table = '', name = ''] = chain.split(' ')
  return shellReader(ns, 'nft -t list ruleset', (out) => chainListing(out, family, table, name))
}

/** A committed nf_tables generation as a monitor saw it: who made it, and when its line came. */
export interface Generation {
  readonly pid: number
  /** CLOCK_MONOTONIC, ms: comparable with other generations' times only. */
  readonly at: number
}

/** Stamps each line it reads with the time it came: it does nothing else, so it is not late. */
const STAMP =
  'use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC); $| = 1; ' +
  'while (<STDIN>) { printf "%.4f %s", 1000 * clock_gettime(CLOCK_MONOTONIC), $_ }'

/**
 * `nft monitor` in the namespace: every generation committed there, with the time its line came
 * from the monitor (a process that only stamps lines, not this one: a stamp taken here could be
 * late by whatever held this process's event loop). `next` waits for the first generation after
 * the `from`th that `f` accepts.
 */
export function generationWatch(ns: string) {
  const child = spawn('ip', ['netns', 'exec', ns, 'sh', '-c', `nft monitor | perl -e '${STAMP}'`], {
    stdio: ['ignore', 'pipe', 'ignore'],
    detached: true,
  })
  const seen: Generation[] = []
  let waiting: (() => void) | undefined
  let partial = ''
  child.stdout.on('data', (b: Buffer) => {
    const lines = (partial + b.toString()).split('\n')
    partial = lines.pop() ?? ''
    for (const l of lines) {
      const m = /^([\d.]+) # new generation \d+ by process (\d+)/.exec(l)
      if (m) seen.push({ pid: Number(m[2]), at: Number(m[1]) })
    }
    waiting?.()
  })
  return {
    seen,
    async next(from: number, f: (g: Generation) => boolean, timeoutMs: number) {
      const deadline = performance.now() + timeoutMs
      for (;;) {
        const i = seen.findIndex((g, j) => j >= from && f(g))
        if (i >= 0) return i
        const left = deadline - performance.now()
        if (left <= 0) throw new Error(`no such nf_tables generation within ${timeoutMs} ms`)
        await new Promise<void>((done) => {
          const t = setTimeout(done, left)
          waiting = () => {
            clearTimeout(t)
            done()
          }
        })
      }
    },
    /**
     * Resolves once the monitor reports: nft lists the ruleset before it follows changes (a
     * second or more at 100,000 peers), and a change made before then is not seen. A table of
     * its own is made and deleted until one of these shows.
     */
    async ready(run: Runner) {
      const deadline = performance.now() + 30_000
      while (performance.now() < deadline) {
        const made = await run('nft', ['add', 'table', 'inet', 'palisade_bench_ready'])
        await run('nft', ['delete', 'table', 'inet', 'palisade_bench_ready'])
        await new Promise((r) => setTimeout(r, 200))
        if (seen.some((g) => g.pid === made.pid)) return
      }
      throw new Error('nft monitor reported nothing within 30 s')
    },
    /** Ends the monitor and the stamping with it (one process group). */
    stop: () => {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGTERM')
    },
  }
}

/** One chain's lines out of an `nft list ruleset` listing ('' where the chain is not there). */
export function chainListing(ruleset: string, family: string, table: string, chain: string) {
  const lines = ruleset.split('\n')
  const t = lines.indexOf(`table ${family} ${table} {`)
  if (t < 0) return ''
  const tableEnd = lines.indexOf('}', t)
  const c = lines.indexOf(`\tchain ${chain} {`, t)
  if (c < 0 || (tableEnd >= 0 && c > tableEnd)) return ''
  const end = lines.indexOf('\t}', c)
  return lines.slice(c, end < 0 ? undefined : end + 1).join('\n')
}

/** Seconds of CPU a process used, its own and its waited-for children's (/proc/PID/stat). */
/**
 * A process's CPU time and its tools': `own` is its own; `tools` counts the children it reaped
 * and every descendant still running (a tool session, the tool shell) with the children they
 * reaped: a tool started by a shell the agent keeps is reaped by that shell, not the agent.
 */
export async function cpuSeconds(pid: number, hz: number): Promise<{ own: number; tools: number }> {
  const all = await processStats()
  const at = all.get(pid)
  if (!at) throw new Error(`no process ${pid}`)
  const children = new Map<number, number[]>()
  for (const [p, s] of all) children.set(s.ppid, [...(children.get(s.ppid) ?? []), p])
  let tools = at.reaped
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      tools += (all.get(c)?.own ?? 0) + (all.get(c)?.reaped ?? 0)
      walk(c)
    }
  }
  walk(pid)
  return { own: at.own / hz, tools: tools / hz }
}

/** Every process's parent and CPU ticks: its own, and its reaped children's. */
async function processStats(): Promise<Map<number, { ppid: number; own: number; reaped: number }>> {
  const out = new Map<number, { ppid: number; own: number; reaped: number }>()
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => undefined)
    if (stat === undefined) continue
    // Fields after the command name, which may hold spaces: state is field 3, utime field 14.
    const f = stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number)
    const at = (field: number) => f[field - 3] ?? 0
    out.set(Number(name), { ppid: at(4), own: at(14) + at(15), reaped: at(16) + at(17) })
  }
  return out
}

/** A process's resident memory now and its peak (VmRSS, VmHWM), in KiB. */
export async function rssKb(pid: number): Promise<{ rss: number; peak: number }> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN)
  return { rss: kb('VmRSS'), peak: kb('VmHWM') }
}
