/**
 * Policy-server figures, on loopback over TLS, against an in-process server on a real store
 * (SQLite, then PostgreSQL): API reads and writes per second, and for N simulated agents (each
 * long-polls its policy and reports the applied hash) activations per second, provision-to-synced
 * latency and heartbeats per second sustained with zero loss.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Client } from './https-client.js'
import { rate, withServer } from './https-client.js'
import { startTestPostgres } from '../packages/server/src/postgres.fixture.js'

const AGENTS = Number(process.env.PALISADE_BENCH_AGENTS ?? 1000)
const SECONDS = Number(process.env.PALISADE_BENCH_SECONDS ?? 5)

async function apiRates(c: Client) {
  let k = 0
  const writes = await rate(
    SECONDS,
    8,
    async () =>
      (
        await c.call('POST', '/api/v2/orgs/1/labels', {
          key: 'bench',
          value: `v${k++}-${Math.random()}`,
        })
      ).status === 201,
  )
  const reads = await rate(
    SECONDS,
    8,
    async () => (await c.call('GET', '/api/v2/orgs/1/labels?max_results=50')).status === 200,
  )
  return {
    readsPerSecond: reads.perSecond,
    writesPerSecond: writes.perSecond,
    failures: reads.failures + writes.failures,
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = { agents: AGENTS, seconds: SECONDS }
  // The simulated agents run in a process of their own: their client work must not share the
  // server's event loop, or it would be counted as the server's latency.
  const fleet = (database: string | undefined) =>
    withServer(database, (_c, url, ca, basic) => simulateInProcess(url, ca, basic))
  out.sqlite = await withServer(undefined, apiRates)
  out.simulatedAgents = await fleet(undefined)
  const pg = await startTestPostgres()
  try {
    out.postgres = await withServer(await pg.freshDatabase(), apiRates)
    out.simulatedAgentsPostgres = await fleet(await pg.freshDatabase())
  } finally {
    await pg.stop()
  }
  return out
}

function simulateInProcess(
  url: string,
  ca: string,
  basic: string,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--conditions=source',
        '--import',
        'tsx',
        fileURLToPath(new URL('./simulated-agents.ts', import.meta.url)),
      ],
      {
        env: {
          ...process.env,
          PALISADE_SIM: JSON.stringify({ url, ca, basic, agents: AGENTS, seconds: SECONDS }),
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    )
    let out = ''
    child.stdout.on('data', (b: Buffer) => (out += b.toString()))
    child.on('error', reject)
    child.on('close', (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split('\n').pop() ?? '{}') as Record<string, unknown>)
        : reject(new Error(`the simulated agents exited with code ${code}`)),
    )
  })
}
