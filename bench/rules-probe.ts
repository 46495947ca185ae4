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

/** Lists a chain through one `nft -i` that stays running: no process to start for each read. */
export function nftReader(ns: string, chain: string): Reader {
  const child: ChildProcess = spawn('ip', ['netns', 'exec', ns, 'nft', '-i'], {
    stdio: ['pipe', 'pipe', 'ignore'],
  })
  let buffer = ''
  let answer: ((text: string) => void) | undefined
  child.stdout?.on('data', (b: Buffer) => {
    buffer += b.toString()
    // A listing ends with the table's closing brace on a line of its own.
    const end = /^}\n/m.exec(buffer)
    if (!end || !answer) return
    const text = buffer.slice(0, end.index)
    buffer = buffer.slice(end.index + end[0].length)
    const a = answer
    answer = undefined
    a(text)
  })
  return {
    read: () =>
      new Promise((resolve) => {
        answer = resolve
        child.stdin?.write(`list chain ${chain}\n`)
      }),
    stop: () => void child.kill(),
  }
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
