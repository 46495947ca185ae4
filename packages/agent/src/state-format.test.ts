import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { DEFAULT_CONFIG, loadConfig } from './agent-config.js'
import { ensureStateDir } from './state-dir.js'
import { migrateStateDir, STATE_FORMAT, stateFormatOf, withoutDefaults } from './state-format.js'

/**
 * A state dir exactly as an agent of format 1 left it after `activate` and a run: every
 * default written into config.json (the lab's agents add a fast heartbeat and a backend), the
 * credential, the known-good policy, and no format record.
 */
const FORMAT_1_CONFIG = {
  backend: 'nftables',
  managementPorts: [{ proto: 6, port: 22 }],
  pollMs: 1000,
  backstopMs: 30000,
  fight: { windowMs: 10000, threshold: 3 },
  heartbeatMs: 1000,
  confirmMs: 20000,
  flows: { group: 4720, intervalMs: 2000, bufferBytes: 16777216 },
  surveyMs: 60000,
  server: {
    url: 'https://policy.example.test:8443',
    caCertFile: '/var/lib/palisade/server-ca.crt',
    agentId: 'a1b2',
  },
}
const FORMAT_1_FILES: Record<string, string> = {
  'config.json': `${JSON.stringify(FORMAT_1_CONFIG, null, 2)}\n`,
  'credentials.json': '{"token":"a1b2.secret"}\n',
  'policy.json': '{"hash":"abc123","policy":{"version":4},"appliedMode":"exclusive"}\n',
  'events.jsonl': '{"event_type":"agent.health"}\n',
  'events.offset': '0\n',
}

describe('state-dir format', () => {
  const dirs: string[] = []
  const format1Dir = async () => {
    const dir = mkdtempSync(join(tmpdir(), 'palisade-state-'))
    dirs.push(dir)
    for (const [f, text] of Object.entries(FORMAT_1_FILES)) writeFileSync(join(dir, f), text)
    return ensureStateDir(dir)
  }
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  })

  it('migrates a dir of the previous format: the same settings, without the old defaults', async () => {
    const p = await format1Dir()
    const before = await loadConfig(p)
    const logs: Record<string, unknown>[] = []
    expect(await migrateStateDir(p, '9.9.9', (l) => logs.push(l))).toBe(1)
    expect(
      await loadConfig(p),
      'the agent runs with what it ran with, but for the defaults changed since',
    ).toEqual({ ...before, pollMs: DEFAULT_CONFIG.pollMs })
    expect(DEFAULT_CONFIG.pollMs, 'the poll of format 1 was 1 s').not.toBe(1000)
    expect(JSON.parse(readFileSync(p.config, 'utf8'))).toEqual({
      backend: 'nftables',
      heartbeatMs: 1000,
      flows: { intervalMs: 2000 },
      server: FORMAT_1_CONFIG.server,
    })
    expect(JSON.parse(readFileSync(p.format, 'utf8'))).toEqual({
      format: STATE_FORMAT,
      written_by: '9.9.9',
    })
    for (const f of ['credentials.json', 'policy.json', 'events.jsonl', 'events.offset'])
      expect(readFileSync(join(p.dir, f), 'utf8'), f).toBe(FORMAT_1_FILES[f])
    expect(logs).toEqual([{ msg: 'state dir migrated', dir: p.dir, from: 1, to: 2 }])
    // Migrated once: a second start finds the current format and changes nothing.
    const config = readFileSync(p.config, 'utf8')
    expect(await migrateStateDir(p, '9.9.9')).toBe(STATE_FORMAT)
    expect(readFileSync(p.config, 'utf8')).toBe(config)
  })

  it('after the migration a changed default reaches the host; a setting of its own stays', async () => {
    const p = await format1Dir()
    await migrateStateDir(p, '9.9.9')
    const file = JSON.parse(readFileSync(p.config, 'utf8')) as Record<string, unknown>
    expect(file.confirmMs, 'the old default is no longer pinned').toBeUndefined()
    expect(file.pollMs, 'nor a default changed since (the 1 s poll)').toBeUndefined()
    expect(file.heartbeatMs, 'what differed from the default stays').toBe(1000)
  })

  it('refuses a dir written by a newer agent and leaves it untouched', async () => {
    const p = await format1Dir()
    writeFileSync(p.format, JSON.stringify({ format: STATE_FORMAT + 1, written_by: '99.0.0' }))
    const listing = readdirSync(p.dir).sort()
    await expect(migrateStateDir(p, '0.1.0')).rejects.toThrow(
      `is in state-dir format ${STATE_FORMAT + 1}, written by a newer agent; this agent (version 0.1.0) knows formats up to ${STATE_FORMAT}`,
    )
    expect(readdirSync(p.dir).sort()).toEqual(listing)
    expect(readFileSync(p.config, 'utf8')).toBe(FORMAT_1_FILES['config.json'])
  })

  it('refuses a format record that names no format', async () => {
    const p = await format1Dir()
    for (const bad of ['{"format":"2"}', '{"format":0}', '[]', 'null']) {
      writeFileSync(p.format, bad)
      await expect(stateFormatOf(p), bad).rejects.toThrow('names no state-dir format')
    }
    writeFileSync(p.format, '{not json')
    await expect(stateFormatOf(p)).rejects.toThrow('is not valid JSON')
  })

  it('a new dir starts in the current format with an empty config', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'palisade-state-'))
    dirs.push(dir)
    const p = await ensureStateDir(join(dir, 'new'))
    expect(await migrateStateDir(p, '0.1.0')).toBe(1)
    expect(await stateFormatOf(p)).toBe(STATE_FORMAT)
    expect(await loadConfig(p)).toEqual(DEFAULT_CONFIG)
    expect(readFileSync(p.config, 'utf8')).toBe('{}\n')
  })

  it('drops only the settings equal to the defaults, nested ones key by key', () => {
    expect(
      withoutDefaults(
        { a: 1, b: [1, 2], c: { x: 1, y: 2 }, d: { x: 1 }, e: null },
        { a: 1, b: [1], c: { x: 1, y: 3 }, d: { x: 1 }, e: 5 },
      ),
    ).toEqual({ b: [1, 2], c: { y: 2 }, e: null })
  })
})
