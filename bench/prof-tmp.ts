import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { withServer } from './https-client.js'
import { startTestPostgres } from '../packages/server/src/postgres.fixture.js'
const AGENTS = 10000
const pg = await startTestPostgres()
const url0 = await pg.freshDatabase()
await withServer(process.env.PG ? url0 : undefined, (_c, url, ca, basic) => new Promise((resolve) => {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', fileURLToPath(new URL('./simulated-agents.ts', import.meta.url))], {
    env: { ...process.env, NODE_OPTIONS: '', PALISADE_SIM: JSON.stringify({ url, ca, basic, agents: AGENTS, seconds: 2 }) },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  child.on('close', () => resolve({}))
}))
await pg.stop()
