import { spawn } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AGENT_MANIFEST } from './agent-package.js'
import type { TestServer } from './test-server.fixture.js'
import { testServer } from './test-server.fixture.js'

const PACKAGING = fileURLToPath(new URL('../../../packaging/', import.meta.url))
const CA = '-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n'
/** Stands for the one-file agent: what the server serves is bytes with a pinned hash. */
const AGENT = Buffer.from('#!/bin/sh\necho 0.1.0\n')
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** Runs `sh ARGS` with `script` on its standard input; its exit code and output. */
const sh = (script: string, args: string[]) =>
  new Promise<{ code: number; out: string }>((resolve) => {
    const child = spawn('sh', args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (b: Buffer) => (out += b.toString()))
    child.stderr.on('data', (b: Buffer) => (out += b.toString()))
    child.on('close', (code) => resolve({ code: code ?? -1, out }))
    child.stdin.end(script)
  })

describe('the agent package: install script, agent download, the pairing one-liner', () => {
  let dir: string
  let pkg: string
  let s: TestServer
  let bare: TestServer
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'palisade-agent-install-'))
    pkg = join(dir, 'dist')
    for (const d of [pkg, join(dir, 'empty')]) await mkdir(d)
    await writeFile(join(dir, 'ca.crt'), CA)
    await writeFile(join(pkg, 'palisade-agent-linux-x64'), AGENT)
    for (const f of ['install.sh', 'palisade-agent.service'])
      await copyFile(join(PACKAGING, f), join(pkg, f))
    await writeFile(
      join(pkg, AGENT_MANIFEST),
      JSON.stringify({
        version: '0.1.0',
        node: 'v20.20.2',
        built_at: '2026-01-01T00:00:00Z',
        files: [
          {
            os: 'linux',
            arch: 'x64',
            file: 'palisade-agent-linux-x64',
            sha256: sha(AGENT),
            size: AGENT.length,
          },
        ],
      }),
    )
    s = await testServer(undefined, undefined, { caCertFile: join(dir, 'ca.crt'), agentDir: pkg })
    bare = await testServer(undefined, undefined, {
      caCertFile: join(dir, 'ca.crt'),
      agentDir: join(dir, 'empty'),
    })
  })
  afterAll(async () => {
    await s?.close()
    await bare?.close()
    await rm(dir, { recursive: true, force: true })
  })

  const pairingKey = async (server: TestServer, host: string) => {
    const p = await server.call('POST', '/api/v2/orgs/1/pairing_profiles', { name: `p-${host}` })
    expect(p.statusCode, p.body).toBe(201)
    const r = await server.call(
      'POST',
      `/api/v2${(p.json() as { href: string }).href}/pairing_key`,
      {},
      { host },
    )
    expect(r.statusCode, r.body).toBe(200)
    return r.json() as {
      activation_code: string
      palisade: { install_command: string | null; install_unavailable?: string }
    }
  }

  it('serves an install script that carries the CA, the pinned SHA-256 and the address it was asked by', async () => {
    const r = await s.app.inject({
      url: '/agent/install.sh',
      headers: { host: 'pce.example:8443' },
    })
    expect(r.statusCode, r.body).toBe(200)
    expect(r.headers['content-type']).toBe('text/x-shellscript; charset=utf-8')
    const script = r.body
    expect(script).toContain("server='pce.example:8443'")
    expect(script).toContain(`sha256_x64=${sha(AGENT)}`)
    expect(script).toContain(CA.trim())
    expect(script).not.toMatch(/@PALISADE_[A-Z_]+@/)
    expect((await sh(script, ['-n'])).code, 'the script parses').toBe(0)
    // the unit it would install, at the default paths and at others
    const unit = await sh(script, ['-s', '--', '--print-unit'])
    expect(unit.code, unit.out).toBe(0)
    expect(unit.out).toContain(
      'ExecStart=/usr/local/lib/palisade-agent/palisade-agent run --state-dir /var/lib/palisade\n',
    )
    expect(unit.out).toContain('StateDirectory=palisade\n')
    // The agent swaps its executable in its own directory, the one it may write besides its state.
    expect(unit.out).toContain('ProtectSystem=strict\n')
    expect(unit.out.match(/^ReadWritePaths=.*$/gm)).toEqual([
      'ReadWritePaths=/run/xtables.lock',
      'ReadWritePaths=/usr/local/lib/palisade-agent',
    ])
    expect(unit.out).toContain('RestartForceExitStatus=75\n')
    // Before each start, outside the sandbox the lock, inside it the guard that rolls back a
    // new build that does not start.
    expect(unit.out.match(/^ExecStartPre=.*$/gm)).toEqual([
      'ExecStartPre=+touch /run/xtables.lock',
      'ExecStartPre=/bin/sh /usr/local/lib/palisade-agent/palisade-agent.start-guard /usr/local/lib/palisade-agent/palisade-agent /var/lib/palisade',
    ])
    const guard = await sh(script, ['-s', '--', '--print-start-guard'])
    expect(guard.code, guard.out).toBe(0)
    expect(guard.out).toMatch(/^#!\/bin\/sh\n# The Palisade agent's start guard/)
    const moved = await sh(script, [
      '-s',
      '--',
      '--print-unit',
      '--state-dir',
      '/srv/palisade',
      '--install-dir',
      '/opt/bin',
    ])
    expect(moved.out).toContain('ExecStart=/opt/bin/palisade-agent run --state-dir /srv/palisade\n')
    expect(moved.out.match(/^ReadWritePaths=.*$/gm)).toEqual([
      'ReadWritePaths=/srv/palisade',
      'ReadWritePaths=/run/xtables.lock',
      'ReadWritePaths=/opt/bin',
    ])
    expect(moved.out.match(/^ExecStartPre=\/bin\/sh .*$/gm)).toEqual([
      'ExecStartPre=/bin/sh /opt/bin/palisade-agent.start-guard /opt/bin/palisade-agent /srv/palisade',
    ])
    expect(moved.out).not.toContain('StateDirectory')
    expect(moved.out).not.toContain('/usr/local/lib/palisade-agent')
    // A directory others' programs run from is not made writable to the agent.
    const shared = await sh(script, [
      '-s',
      '--',
      '--print-unit',
      '--install-dir',
      '/usr/local/bin/',
    ])
    expect([shared.code, shared.out]).toEqual([
      1,
      'palisade install: --install-dir /usr/local/bin/ is shared with other programs, and the unit lets the agent write it: give the agent a directory of its own (default /usr/local/lib/palisade-agent)\n',
    ])
    const mixed = join(dir, 'mixed-bin')
    await mkdir(mixed)
    await writeFile(join(mixed, 'palisade-agent.previous'), '')
    const own = await sh(script, ['-s', '--', '--print-unit', '--install-dir', mixed])
    expect(own.code, 'the agent and its upgrade files only: its own directory').toBe(0)
    await writeFile(join(mixed, 'other-tool'), '')
    const other = await sh(script, ['-s', '--', '--print-unit', '--install-dir', mixed])
    expect([other.code, other.out]).toEqual([
      1,
      `palisade install: ${mixed} holds other-tool, and the unit lets the agent write it: give the agent a directory of its own (--install-dir; default /usr/local/lib/palisade-agent)\n`,
    ])
    const refused = await sh(script, ['-s', '--', '--print-unit', '--state-dir', 'rel/dir'])
    expect([refused.code, refused.out]).toEqual([
      1,
      "palisade install: --state-dir must be an absolute path, not 'rel/dir'\n",
    ])
  })

  it('serves the agent as packaged, and refuses a file that no longer matches its manifest', async () => {
    const r = await s.app.inject({ url: '/agent/palisade-agent-linux-x64' })
    expect(r.statusCode).toBe(200)
    expect(r.rawPayload.equals(AGENT)).toBe(true)
    expect(r.headers['content-length']).toBe(String(AGENT.length))
    expect((await s.app.inject({ url: '/agent/palisade-agent-linux-arm64' })).json()).toEqual([
      {
        token: 'agent_install_unavailable',
        message: "this server's agent package has no linux-arm64 build",
      },
    ])
    const file = join(pkg, 'palisade-agent-linux-x64')
    await writeFile(file, '#!/bin/sh\necho 6.6.6\n')
    await utimes(file, new Date(), new Date(Date.now() + 5000))
    const bad = await s.app.inject({ url: '/agent/palisade-agent-linux-x64' })
    expect(bad.statusCode).toBe(500)
    expect(bad.json()).toMatchObject([{ token: 'agent_package_corrupt' }])
    await writeFile(file, AGENT)
    expect((await s.app.inject({ url: '/agent/palisade-agent-linux-x64' })).statusCode).toBe(200)
  })

  it('adds the one-liner to a new activation code', async () => {
    const k = await pairingKey(s, '10.1.2.3:8443')
    expect(k.palisade).toEqual({
      install_command: `curl -fsS --cacert ${join(dir, 'ca.crt')} https://10.1.2.3:8443/agent/install.sh | sudo sh -s -- --activation-code ${k.activation_code}`,
    })
  })

  it('says what to do when no package was built, and writes no Host it cannot trust into a script', async () => {
    const r = await bare.app.inject({ url: '/agent/install.sh', headers: { host: 'pce:8443' } })
    expect(r.statusCode).toBe(404)
    const [issue] = r.json() as { token: string; message: string }[]
    expect(issue?.token).toBe('agent_install_unavailable')
    expect(issue?.message).toContain('run `npm run package`')
    expect((await bare.app.inject({ url: '/agent/palisade-agent-linux-x64' })).statusCode).toBe(404)
    const k = await pairingKey(bare, 'pce:8443')
    expect(k.palisade.install_command).toBeNull()
    expect(k.palisade.install_unavailable).toContain('run `npm run package`')
    const evil = await s.app.inject({ url: '/agent/install.sh', headers: { host: 'x;reboot' } })
    expect(evil.statusCode).toBe(404)
    expect((await pairingKey(s, 'x$(reboot)')).palisade.install_command).toBeNull()
  })

  it('says so when the manifest is broken', async () => {
    await writeFile(join(dir, 'empty', AGENT_MANIFEST), '{"version": "0.1.0", "files": []}')
    const r = await bare.app.inject({ url: '/agent/install.sh', headers: { host: 'pce:8443' } })
    expect(r.statusCode).toBe(404)
    expect((r.json() as { message: string }[])[0]?.message).toContain(
      'is not a manifest of agent files: run `npm run package` again',
    )
  })
})
