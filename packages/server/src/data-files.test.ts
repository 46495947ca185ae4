import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { startServer } from './main.js'
import { testServer } from './test-server.fixture.js'

const mode = async (path: string) => (await stat(path)).mode & 0o777

describe('the data dir and the store files', () => {
  it('are the server user’s alone, also when they existed before with wider modes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'palisade-files-'))
    await chmod(dir, 0o755)
    await writeFile(join(dir, 'palisade.db'), '', { mode: 0o644 })
    await chmod(join(dir, 'palisade.db'), 0o644)
    const server = await startServer({ listen: '127.0.0.1:0', dataDir: dir, tls: 'off' })
    try {
      expect(await mode(dir)).toBe(0o700)
      for (const f of ['palisade.db', 'palisade.db-wal', 'palisade.db-shm'])
        expect({ f, mode: await mode(join(dir, f)) }).toEqual({ f, mode: 0o600 })
    } finally {
      await server.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('request ids', () => {
  it('are the server’s own, whatever id the client sends', async () => {
    const s = await testServer()
    try {
      const r = await s.call('GET', '/api/v2/health', undefined, { 'x-request-id': 'client-1' })
      expect(r.headers['x-request-id']).not.toBe('client-1')
      expect(r.headers['x-request-id']).toMatch(
        /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
      )
    } finally {
      await s.close()
    }
  })
})
