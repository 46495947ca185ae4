/**
 * Policy servers in processes of their own (server-main.ts), so that what a benchmark measures
 * of a server is not shared with its clients' CPU, and several can run on one store.
 */
import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { ServerOptions } from '@palisade/server'
import type { Client } from './https-client.js'
import { client } from './https-client.js'

/**
 * A TypeScript file of bench/ in a node of its own; resolves with its first JSON line. `node`
 * adds options for node itself (a CPU profile, say).
 */
export function benchProcess(
  file: string,
  env: Record<string, string>,
  node: readonly string[] = [],
): { child: ChildProcess; line: Promise<unknown> } {
  const path = fileURLToPath(new URL(file, import.meta.url))
  const child = spawn(process.execPath, [...node, '--conditions=source', '--import', 'tsx', path], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const line = new Promise<unknown>((resolve, reject) => {
    let out = ''
    const onData = (b: Buffer) => {
      out += b.toString()
      const nl = out.indexOf('\n')
      if (nl < 0) return
      child.stdout?.off('data', onData)
      resolve(JSON.parse(out.slice(0, nl)))
    }
    child.stdout?.on('data', onData)
    child.on('error', reject)
    child.on('exit', (code) =>
      reject(new Error(`${file} exited with code ${code} before answering`)),
    )
  })
  return { child, line }
}

export interface ServerProcess {
  readonly url: string
  /** The CA its certificate chains to (the cluster's, when given a cluster secret). */
  readonly ca: string
  readonly bootstrapFile: string
  readonly pid: number
  stop(): Promise<void>
}

/**
 * Starts a server (rate limits off: the benchmark is the only client) and waits until it
 * listens. With PALISADE_BENCH_SERVER_PROFILE=DIR each server writes a CPU profile of its life
 * into DIR (`.cpuprofile`, for Chrome's DevTools), to see where a run's time goes.
 */
export async function startServerProcess(
  options: Partial<ServerOptions> & { dataDir: string },
): Promise<ServerProcess> {
  const profile = process.env.PALISADE_BENCH_SERVER_PROFILE
  const { child, line } = benchProcess(
    './server-main.ts',
    { PALISADE_SERVER: JSON.stringify(options) },
    profile ? ['--cpu-prof', '--cpu-prof-dir', profile] : [],
  )
  const s = (await line) as Omit<ServerProcess, 'stop' | 'pid'>
  return {
    ...s,
    pid: child.pid ?? NaN,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve()
        child.once('exit', () => resolve())
        child.kill('SIGTERM')
      }),
  }
}

/** The administrator's Authorization header, from the bootstrap file of the server that made it. */
export async function adminAuth(s: ServerProcess): Promise<string> {
  const boot = JSON.parse(await readFile(s.bootstrapFile, 'utf8')) as {
    api_user: string
    api_secret: string
  }
  return `Basic ${Buffer.from(`${boot.api_user}:${boot.api_secret}`).toString('base64')}`
}

/** The API of `s` as its administrator. */
export async function adminClient(s: ServerProcess): Promise<Client> {
  return client(s.url, s.ca, await adminAuth(s))
}
