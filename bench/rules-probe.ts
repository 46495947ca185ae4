/**
 * Reading our rules from outside the agent, for benchmarks that time what the kernel holds
 * rather than what the agent says: a listing reader, and the CPU a process has used.
 */
import type { Runner } from '@palisade/agent'
import { runChecked } from '@palisade/agent'
import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'

export interface Reader {
  read(): Promise<string>
  stop(): void
}

const END = '#palisade-bench-read-end'

/**
 * Lists a chain through one shell that stays running in the namespace (no `ip netns exec` for
 * each read) and a terse `nft -t list ruleset`: nft 1.0.6 fetches every element of a table's
 * sets before it lists any of its chains (`list chain`, even terse, even `nft -i`, costs 0.5 to
 * 1 s with 100,000 addresses, and keeps a core busy), but not for a terse listing of the
 * ruleset (10 ms at any size). Reading through `list chain` made most of what a benchmark timed
 * at 100,000 peers the reader's own time.
 */
export function nftReader(ns: string, chain: string): Reader {
  const [family = '', table = '', name = ''] = chain.split(' ')
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
    a(chainListing(text, family, table, name))
  })
  return {
    read: () =>
      new Promise((resolve) => {
        answer = resolve
        child.stdin?.write(`nft -t list ruleset; echo '${END}'\n`)
      }),
    stop: () => void child.kill(),
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

/** Runs a listing command for each read (iptables-legacy has no other way in). */
export const commandReader = (run: Runner, [cmd = '', ...args]: string[]): Reader => ({
  read: () => runChecked(run, cmd, args),
  stop: () => undefined,
})

/** Seconds of CPU a process used, its own and its waited-for children's (/proc/PID/stat). */
export async function cpuSeconds(pid: number, hz: number): Promise<{ own: number; tools: number }> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name, which may hold spaces: state is field 3, utime field 14.
  const f = stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number)
  const at = (field: number) => f[field - 3] ?? NaN
  return { own: (at(14) + at(15)) / hz, tools: (at(16) + at(17)) / hz }
}

/** A process's resident memory now and its peak (VmRSS, VmHWM), in KiB. */
export async function rssKb(pid: number): Promise<{ rss: number; peak: number }> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN)
  return { rss: kb('VmRSS'), peak: kb('VmHWM') }
}
