/**
 * The agent as one file, installed from the server: `npm run package` builds it, a real server
 * in its own namespace offers it, and a host namespace runs the one-liner the server gives with
 * a new activation code, exactly as a user would (curl piped into sh), where neither Node.js
 * nor any node_modules can be reached. The host must end up paired, synced and collecting
 * flows with only the capabilities the systemd unit grants; the unit must pass
 * `systemd-analyze verify`.
 */
import { runChecked, runLocal } from '@palisade/agent'
import type { AgentStatus } from '@palisade/agent'
import { readJson, statePaths } from '@palisade/agent'
import { Lab, LabPeer, LabServer, waitFor } from '@palisade/lab'
import { execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
/** CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_NET_ADMIN, CAP_NET_RAW: what the unit grants. */
const UNIT_CAPS = (1n << 5n) | (1n << 6n) | (1n << 7n) | (1n << 12n) | (1n << 13n)

/** Runs a shell command line in namespace `ns`, in a mount namespace of its own. */
function shellIn(ns: string, line: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('ip', [
      'netns',
      'exec',
      ns,
      'unshare',
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      line,
    ])
    let out = ''
    child.stdout.on('data', (b: Buffer) => (out += b.toString()))
    child.stderr.on('data', (b: Buffer) => (out += b.toString()))
    child.on('close', (code) => resolve({ code: code ?? -1, out }))
  })
}

describe('the one-file agent, installed from the server by its install script', () => {
  let lab: Lab
  let server: LabServer
  let peer: LabPeer
  let work: string
  let pkg: string
  let installDir: string
  let stateDir: string
  let oneLiner: string

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'palisade-install-test-'))
    pkg = join(work, 'package')
    installDir = join(work, 'bin')
    stateDir = join(work, 'state')
    // The real build: the test installs what `npm run package` makes.
    const built = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'scripts/package-agent.ts'), '--out', pkg],
      { cwd: ROOT },
    )
    console.log(built.stdout.trim())
    lab = await Lab.create(['srv', 'host'])
    server = await LabServer.start(lab.host('srv').ns, lab.host('srv').ip4, 8443, [
      '--agent-dir',
      pkg,
    ])
    peer = LabPeer.start(lab.host('srv').ns)
    const profile = await server.apiOk(
      'POST',
      '/api/v2/orgs/1/pairing_profiles',
      { name: 'installed', enforcement_mode: 'full', visibility_level: 'flow_summary' },
      201,
    )
    const key = await server.apiOk('POST', `/api/v2${String(profile.href)}/pairing_key`, {}, 200)
    oneLiner = String((key.palisade as { install_command: string }).install_command)
  }, 120_000)

  afterAll(async () => {
    // The installed agent is stopped by the lab's destroy, found by namespace.
    await peer?.stop()
    await server?.cleanup()
    await lab?.destroy()
    await rm(work, { recursive: true, force: true })
  })

  it('gives the one-liner with a new activation code', () => {
    expect(oneLiner).toMatch(
      new RegExp(
        `^curl -fsS --cacert ${server.bootstrap.ca_cert} https://${lab.host('srv').ip4.replaceAll('.', '\\.')}:8443/agent/install\\.sh \\| sudo sh -s -- --activation-code [0-9a-f]+$`,
      ),
    )
  })

  it('installs, pairs and starts the agent with neither Node.js nor node_modules on the host', async () => {
    const node = await readlink(`/proc/${process.pid}/exe`)
    // What a host without Palisade's checkout or Node.js looks like, in this mount namespace only.
    const hide = [
      `mount -t tmpfs tmpfs ${ROOT}`,
      `mount --bind /dev/null ${node}`,
      `! [ -d /usr/lib/node_modules ] || mount -t tmpfs tmpfs /usr/lib/node_modules`,
      `! node --version 2>/dev/null`,
      `! [ -e ${join(ROOT, 'node_modules')} ]`,
    ].join(' && ')
    // The one-liner as given (the test already runs as root), with paths of the test's own.
    const install = `${oneLiner.replace('| sudo sh', '| sh')} --state-dir ${stateDir} --install-dir ${installDir} --no-systemd --hostname installed`
    const started = performance.now()
    const r = await shellIn(lab.host('host').ns, `${hide} && ${install}`)
    expect(r.code, r.out).toBe(0)
    const w = await waitFor(
      'the installed host to be synced on the server',
      async () => {
        const list = (await server.apiOk(
          'GET',
          '/api/v2/orgs/1/workloads?hostname=installed&match_type=exact',
          undefined,
          200,
        )) as unknown as { agent: { status: { security_policy_sync_state: string } } }[]
        return list[0]?.agent.status.security_policy_sync_state === 'synced' ? list[0] : undefined
      },
      30_000,
      250,
    )
    console.log(`install script to synced: ${Math.round(performance.now() - started)} ms`)
    expect(w).toBeDefined()
    expect(r.out).toContain(`palisade install: installed ${installDir}/palisade-agent`)
    // Beside it, the start guard the unit runs (upgrades never replace it).
    expect(await readFile(join(installDir, 'palisade-agent.start-guard'), 'utf8')).toMatch(
      /^#!\/bin\/sh\n# The Palisade agent's start guard/,
    )
    expect(r.out).toMatch(/applied: +version \d+ at .*, verified/)

    // The agent running is the installed file, with the unit's capabilities and no others.
    const pid = Number(await readFile(join(stateDir, 'agent.pid'), 'utf8'))
    expect(await readlink(`/proc/${pid}/exe`)).toBe(join(installDir, 'palisade-agent'))
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const cap = (name: string) =>
      BigInt(`0x${new RegExp(`^Cap${name}:\\s+([0-9a-f]+)$`, 'm').exec(status)?.[1] ?? ''}`)
    expect(cap('Bnd')).toBe(UNIT_CAPS)
    expect(cap('Eff')).toBe(UNIT_CAPS)
    expect(status).toMatch(/^NoNewPrivs:\s+1$/m)
  })

  it('collects flows with those capabilities: tcpdump reads our log as its own user', async () => {
    const host = lab.host('host')
    // full enforcement and no rule: a connection to the host is blocked and logged
    expect(await peer.probe([{ proto: 'tcp', host: host.ip4, port: 5000 }])).toEqual(['timeout'])
    const s = await waitFor(
      'the agent to log the blocked connection',
      async () => {
        const st = await readJson<AgentStatus>(statePaths(stateDir).status)
        return st?.flows && st.flows.packets > 0 ? st : undefined
      },
      15_000,
      200,
    )
    expect(s.flows?.readers.log).toBe('running')
    const tcpdump = await runChecked(runLocal, 'pgrep', ['-u', 'tcpdump', '-f', 'nflog:'])
    expect(tcpdump.trim()).not.toBe('')
  })

  it('refuses an agent whose SHA-256 is not the one pinned, and installs nothing', async () => {
    const zeros = '0'.repeat(64)
    const script = join(work, 'pinned-otherwise.sh')
    const r = await shellIn(
      lab.host('host').ns,
      [
        `curl -fsS --cacert ${server.bootstrap.ca_cert} https://${server.endpoint}/agent/install.sh > ${script}`,
        `sed -i 's/^sha256_x64=[0-9a-f]\\{64\\}$/sha256_x64=${zeros}/' ${script}`,
        `sh ${script} --activation-code unused --state-dir ${work}/state2 --install-dir ${work}/bin2 --no-systemd`,
      ].join(' && '),
    )
    expect(r.code, r.out).toBe(1)
    expect(r.out).toMatch(
      new RegExp(`SHA-256 is [0-9a-f]{64}, not ${zeros} as the server pinned: nothing installed`),
    )
    expect(existsSync(join(work, 'bin2', 'palisade-agent'))).toBe(false)
    expect(existsSync(join(work, 'state2'))).toBe(false)
  })

  it('writes a systemd unit that systemd-analyze verifies', async () => {
    const unit = join(work, 'palisade-agent.service')
    const r = await shellIn(
      lab.host('host').ns,
      `curl -fsS --cacert ${server.bootstrap.ca_cert} https://${server.endpoint}/agent/install.sh | sh -s -- --print-unit --state-dir ${stateDir} --install-dir ${installDir} > ${unit}`,
    )
    expect(r.code, r.out).toBe(0)
    const verify = await runLocal('systemd-analyze', ['verify', unit])
    expect([verify.code, verify.stderr]).toEqual([0, ''])
    // What the agent upgrades is the file it runs (its directory: where it renames the new build
    // in): the unit starts that file and leaves that directory writable, and only it.
    const text = await readFile(unit, 'utf8')
    const values = (name: string) =>
      [...text.matchAll(new RegExp(`^${name}=(.*)$`, 'gm'))].map((m) => m[1])
    const pid = Number(await readFile(join(stateDir, 'agent.pid'), 'utf8'))
    const running = await readlink(`/proc/${pid}/exe`)
    expect(values('ExecStart')).toEqual([`${running} run --state-dir ${stateDir}`])
    expect(values('ProtectSystem')).toEqual(['strict'])
    expect(values('ReadWritePaths')).toEqual([stateDir, '/run/xtables.lock', dirname(running)])
    expect(values('RestartForceExitStatus')).toEqual(['75'])
    const serverUnit = join(work, 'palisade-server.service')
    await writeFile(
      serverUnit,
      (await readFile(join(ROOT, 'packaging/palisade-server.service'), 'utf8')).replace(
        '/usr/bin/node',
        process.execPath,
      ),
    )
    const v2 = await runLocal('systemd-analyze', ['verify', serverUnit])
    expect([v2.code, v2.stderr]).toEqual([0, ''])
  })
})
