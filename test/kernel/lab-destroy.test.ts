/**
 * The lab cleans up by namespace: a process a test left inside (an agent, a supervisor's restart
 * loop, one that ignores SIGTERM) is stopped and the namespaces are gone after `destroy`. Tests
 * used to signal a pid read from a file, which after a wrap of the pids (32,768 here) could be
 * another test's process: the demo's, once, which then tore its estate down mid-test.
 */
import { runLocal } from '@palisade/agent'
import { Lab } from '@palisade/lab'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'

/**
 * Starts `sh -c script` in `ns`, detached as a supervisor would be, once it runs; the signal it
 * ends by, or `running` if it has not ended 5 s after it is asked.
 */
async function leftBehind(ns: string, script: string): Promise<() => Promise<string>> {
  const child = spawn('ip', ['netns', 'exec', ns, 'sh', '-c', script], {
    detached: true,
    stdio: ['ignore', 'pipe', 'ignore'],
  })
  const ended = new Promise<string>((resolve) =>
    child.once('exit', (code, signal) => resolve(signal ?? `exit ${code}`)),
  )
  // the script says it is ready once its trap (if any) is set
  await Promise.race([
    new Promise((resolve) => child.stdout.once('data', resolve)),
    ended.then((how) => Promise.reject(new Error(`the process ended early (${how})`))),
  ])
  child.stdout.destroy()
  return () =>
    Promise.race([ended, new Promise<string>((r) => setTimeout(() => r('running'), 5000))])
}

describe('Lab.destroy', () => {
  it('stops what still runs in its namespaces, one ignoring SIGTERM too, and deletes them', async () => {
    const lab = await Lab.create(['a', 'b'])
    const polite = await leftBehind(lab.host('a').ns, 'echo up; exec sleep 600')
    const stubborn = await leftBehind(
      lab.host('b').ns,
      "trap '' TERM; echo up; while :; do sleep 1; done",
    )

    await lab.destroy()

    expect([await polite(), await stubborn()]).toEqual(['SIGTERM', 'SIGKILL'])
    const left = (await readdir('/run/netns')).filter((n) => n.startsWith(lab.prefix))
    expect(left).toEqual([])
  }, 30_000)

  it('leaves a process outside its namespaces alone', async () => {
    const lab = await Lab.create(['a'])
    const outside = spawn('sleep', ['600'], { stdio: 'ignore' })
    try {
      await lab.destroy()
      expect(outside.exitCode ?? outside.signalCode).toBeNull()
      expect(process.kill(outside.pid ?? 0, 0)).toBe(true)
    } finally {
      outside.kill('SIGKILL')
    }
  }, 30_000)

  it('goes, with what ran in it, when a program that asked for it is ended by a signal', async () => {
    // A program as the benchmark runner is: a namespace with a process in it, until a signal.
    const program = `
      import { Lab, endOnSignals } from '@palisade/lab'
      endOnSignals()
      const ns = await Lab.isolated()
      await ns.run('sh', ['-c', 'sleep 600 >/dev/null 2>&1 & echo $!'])
      console.log(ns.ns)
      setInterval(() => undefined, 1000)
    `
    const child = spawn(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', program],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    const ended = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
    const ns = await new Promise<string>((resolve, reject) => {
      child.stdout.once('data', (b: Buffer) => resolve(b.toString().trim()))
      void ended.then((code) => reject(new Error(`the program ended first (${code})`)))
    })
    const pids = (await runLocal('ip', ['netns', 'pids', ns])).stdout.split('\n').filter(Boolean)
    expect(pids).toHaveLength(1)
    child.kill('SIGTERM')
    expect(await ended).toBe(143)
    expect(await readdir('/run/netns')).not.toContain(ns)
    // Ended: gone, or a zombie until whoever it was handed to collects it.
    const running = (pid: string) => {
      try {
        return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
      } catch {
        return false
      }
    }
    expect(pids.filter(running)).toEqual([])
  }, 30_000)
})
