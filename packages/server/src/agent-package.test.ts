import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AGENT_MANIFEST, agentPackageCache } from './agent-package.js'

const manifest = (sha: string, size: number) =>
  JSON.stringify({
    version: '0.1.0',
    node: 'v20.20.2',
    built_at: '2026-01-01T00:00:00Z',
    files: [{ os: 'linux', arch: 'x64', file: 'palisade-agent-linux-x64', sha256: sha, size }],
  })

describe('the agent package, as status reports read it', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'palisade-agent-package-'))
    await writeFile(join(dir, 'install.sh'), '#!/bin/sh\n')
    await writeFile(join(dir, 'palisade-agent.service'), '[Service]\n')
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('is read once while its manifest is unchanged, again once a package is swapped in', async () => {
    const read = agentPackageCache()
    expect(await read(dir), 'no package yet').toBeUndefined()
    await writeFile(join(dir, AGENT_MANIFEST), manifest('a'.repeat(64), 1000))
    const first = await read(dir)
    expect(first?.manifest.files[0]?.sha256).toBe('a'.repeat(64))
    // Not read again: what it would read now is not what it returns.
    await writeFile(join(dir, 'install.sh'), '#!/bin/sh\n# changed\n')
    const again = await read(dir)
    expect(again).toBe(first)
    expect(again?.installTemplate).toBe('#!/bin/sh\n')
    // A new package: its manifest is written again (as the kernel test's swaps do).
    await writeFile(join(dir, AGENT_MANIFEST), manifest('b'.repeat(64), 20000))
    const swapped = await read(dir)
    expect(swapped?.manifest.files[0]).toMatchObject({ sha256: 'b'.repeat(64), size: 20000 })
    expect(swapped?.installTemplate).toBe('#!/bin/sh\n# changed\n')
    // A manifest that cannot be read is an error each time, and its fix is seen.
    await writeFile(join(dir, AGENT_MANIFEST), '{')
    await expect(read(dir)).rejects.toThrow('is not JSON')
    await writeFile(join(dir, AGENT_MANIFEST), manifest('c'.repeat(64), 300))
    expect((await read(dir))?.manifest.files[0]?.sha256).toBe('c'.repeat(64))
    await rm(join(dir, AGENT_MANIFEST))
    expect(await read(dir)).toBeUndefined()
  })
})
