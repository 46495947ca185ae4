import { execFile } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { chown, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'

const run = promisify(execFile)

function pgBin(tool: string): string {
  for (const dir of (process.env.PATH ?? '').split(':'))
    if (existsSync(join(dir, tool))) return join(dir, tool)
  const base = '/usr/lib/postgresql'
  const versions = existsSync(base) ? readdirSync(base).sort((a, b) => Number(b) - Number(a)) : []
  for (const v of versions)
    if (existsSync(join(base, v, 'bin', tool))) return join(base, v, 'bin', tool)
  throw new Error(
    `${tool} not found: install PostgreSQL (Debian package postgresql), as scripts/setup.sh does`,
  )
}

export interface TestPostgres {
  /** A new, empty database on the private server. */
  freshDatabase(): Promise<string>
  /** Stops the server as a crash would (`pg_ctl stop -m immediate`), its data kept. */
  halt(): Promise<void>
  /** Starts the halted server again (it recovers from its WAL, as after a crash). */
  resume(): Promise<void>
  stop(): Promise<void>
  /** The server's main process (its backends are its children), for benchmarks' CPU figures. */
  postmasterPid(): Promise<number>
}

/**
 * A private PostgreSQL for the tests: its own cluster in a temporary directory, listening only
 * on a unix socket there (no TCP port), run as the `postgres` user when the tests run as root.
 */
export async function startTestPostgres(): Promise<TestPostgres> {
  const dir = await mkdtemp(join(tmpdir(), 'palisade-pg-'))
  const asRoot = process.getuid?.() === 0
  const as = async (cmd: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', cmd, ...args]) : run(cmd, args)
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres'])
    const { stdout: gid } = await run('id', ['-g', 'postgres'])
    await chown(dir, Number(stdout.trim()), Number(gid.trim()))
  }
  const data = join(dir, 'data')
  const port = String(20000 + Math.floor(Math.random() * 20000))
  await as(pgBin('initdb'), ['-D', data, '-A', 'trust', '-U', 'palisade', '--no-sync'])
  const start = () =>
    as(pgBin('pg_ctl'), [
      '-D',
      data,
      '-w',
      '-l',
      join(dir, 'log'),
      '-o',
      `-k ${dir} -p ${port} -c listen_addresses='' -c fsync=off`,
      'start',
    ])
  await start()
  const url = (db: string) =>
    `postgres://palisade@/${db}?host=${encodeURIComponent(dir)}&port=${port}`
  let n = 0
  return {
    freshDatabase: async () => {
      const name = `t${process.pid}_${++n}`
      const client = new pg.Client({ connectionString: url('postgres') })
      await client.connect()
      await client.query(`create database ${name}`)
      await client.end()
      return url(name)
    },
    halt: async () => {
      await as(pgBin('pg_ctl'), ['-D', data, '-m', 'immediate', 'stop'])
    },
    resume: async () => {
      await start()
    },
    postmasterPid: async () =>
      Number((await readFile(join(data, 'postmaster.pid'), 'utf8')).split('\n')[0]),
    stop: async () => {
      await as(pgBin('pg_ctl'), ['-D', data, '-m', 'immediate', 'stop']).catch(() => undefined)
      await rm(dir, { recursive: true, force: true })
    },
  }
}
