/**
 * Upgrades without a gap: a real one-file agent (`npm run package`) enforces a policy on a host
 * namespace; the server orders another build (`PUT /vens/upgrade`); the agent downloads it,
 * swaps it in and restarts, while a peer probes an allowed and a blocked port all along and
 * sees no change. Then a build that cannot report (the server unreachable from the host for
 * its trial) is rolled back to the one before, the rollback reported once the server is back.
 *
 * The releases: one build, and the same build with bytes appended (an ELF runs as it is; the
 * bytes change its SHA-256, so the server and the agent treat it as another release file). It
 * is the real agent either way, so the swap, the restart and the adoption of the kernel's
 * ruleset are the real ones; a rebuild of another version would only take minutes longer.
 *
 * Last, a build that crashes at start, before any of the agent's code could roll it back: the
 * unit's start guard puts the previous build back at its fourth start, and that build reports
 * the rollback.
 *
 * The agent runs as the systemd unit the server's install script writes runs it: its start path
 * (ExecStartPre, ExecStart, Restart=on-failure after RestartSec, the start limit) and its
 * file-system sandbox, where only the paths that unit makes writable are (see `unitStandIn`), so
 * the upgrade and the rollbacks prove the unit lets the agent swap its executable and the guard
 * roll it back. systemd itself does not start it: it is not PID 1 on every test machine (the
 * install test has `systemd-analyze verify` check the same unit).
 */
import { runChecked, runLocal } from '@palisade/agent'
import { Lab, LabPeer, LabServer, waitFor } from '@palisade/lab'
import { execFile, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { openSync } from 'node:fs'
import {
  copyFile,
  mkdir,
  mkdtemp,
  readFile,
  readlink,
  rename,
  rm,
  writeFile,
} from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const FILE = 'palisade-agent-linux-x64'
const ALLOWED = 5001
const BLOCKED = 5000
/** The new build's trial: it must report within this or be rolled back. */
const TRIAL_MS = 6000

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** A directive's values in a unit file, in order. */
const directive = (unit: string, name: string) =>
  [...unit.matchAll(new RegExp(`^${name}=(.*)$`, 'gm'))].map((m) => m[1] ?? '')

/** A directive's one value, as a number. */
const num = (unit: string, name: string) => {
  const [v] = directive(unit, name)
  expect(v, `${name}= in the unit`).toMatch(/^\d+$/)
  return Number(v)
}

/**
 * Two shell scripts that start the unit's ExecStart as systemd would: `supervisor` runs the
 * unit's `+` ExecStartPre= (outside the sandbox), then `sandboxed` in a mount namespace of its
 * own, and after a failed start (any exit but 0) starts again after RestartSec=, as
 * Restart=on-failure does, until the start limit (StartLimitBurst= starts within
 * StartLimitIntervalSec=) leaves the unit failed. INVOCATION_ID is set as systemd sets it.
 * `sandboxed` does what `ProtectSystem=strict` does (every mount read-only, but /dev, /proc and
 * /sys, which the unit's other options guard) and what `ReadWritePaths=` undoes, refuses to go
 * on if `outside` (a path the unit does not name) can still be written, runs the other
 * ExecStartPre= and execs ExecStart=.
 */
function unitStandIn(
  unit: string,
  outside: string,
  sandboxedFile: string,
): { supervisor: string; sandboxed: string } {
  expect(directive(unit, 'ProtectSystem')).toEqual(['strict'])
  expect(directive(unit, 'StateDirectory'), 'a state dir of its own: by ReadWritePaths').toEqual([])
  expect(directive(unit, 'Restart')).toEqual(['on-failure'])
  const writable = directive(unit, 'ReadWritePaths').flatMap((v) => v.split(/\s+/))
  const [start] = directive(unit, 'ExecStart')
  const pre = directive(unit, 'ExecStartPre')
  for (const p of pre) expect(p, 'an ExecStartPre= prefix this stand-in knows').toMatch(/^[+/]/)
  const sandboxed = [
    'set -e',
    ...writable.map((p) => `mount --bind ${p} ${p}`),
    `for m in $(awk '{print $5}' /proc/self/mountinfo); do`,
    `  case $m in /dev | /dev/* | /proc | /proc/* | /sys | /sys/* ${writable.map((p) => `| ${p}`).join(' ')}) continue ;; esac`,
    '  mount -o remount,bind,ro "$m" 2>/dev/null || true',
    'done',
    `if touch ${outside} 2>/dev/null; then echo "the sandbox lets ${outside} be written" >&2; exit 1; fi`,
    ...pre.filter((p) => !p.startsWith('+')),
    `exec ${start}`,
  ].join('\n')
  const supervisor = [
    'export INVOCATION_ID=palisade-upgrade-test',
    "starts=''",
    'while :; do',
    '  now=$(date +%s) recent=0 kept=',
    '  for t in $starts; do',
    `    [ $((now - t)) -lt ${num(unit, 'StartLimitIntervalSec')} ] || continue`,
    '    recent=$((recent + 1)) kept="$kept $t"',
    '  done',
    `  if [ $recent -ge ${num(unit, 'StartLimitBurst')} ]; then echo "systemd stand-in: start limit hit, the unit failed" >&2; exit 1; fi`,
    '  starts="$kept $now"',
    ...pre.filter((p) => p.startsWith('+')).map((p) => `  ${p.slice(1)}`),
    '  code=0',
    `  unshare --mount --propagation private sh ${sandboxedFile} || code=$?`,
    '  echo "systemd stand-in: the agent exited with $code" >&2',
    '  [ $code -ne 0 ] || exit 0',
    `  sleep ${num(unit, 'RestartSec')}`,
    'done',
  ].join('\n')
  return { supervisor, sandboxed }
}

interface Manifest {
  version: string
  files: { arch: string; file: string; sha256: string; size: number }[]
}

describe('upgrades without a gap', () => {
  let lab: Lab
  let server: LabServer
  let client: LabPeer
  let listener: LabPeer
  let work: string
  let served: string
  let exe: string
  let stateDir: string
  let venHref: string
  let v1: Buffer
  const log = () => readFile(join(work, 'agent.log'), 'utf8').catch(() => '')
  const agentPid = async () => Number(await readFile(join(stateDir, 'agent.pid'), 'utf8'))
  const api = (method: string, path: string, body?: unknown, want = 200) =>
    server.apiOk(method, path, body, want)

  /** Serves `build` as the agent package's x64 file (the manifest last, as `npm run package`). */
  const serve = async (build: Buffer) => {
    const manifest = JSON.parse(
      await readFile(join(served, 'agent-manifest.json'), 'utf8'),
    ) as Manifest
    await writeFile(join(served, `${FILE}.tmp`), build, { mode: 0o755 })
    await rename(join(served, `${FILE}.tmp`), join(served, FILE))
    manifest.files = manifest.files.map((f) =>
      f.file === FILE ? { ...f, sha256: sha(build), size: build.length } : f,
    )
    await writeFile(join(served, 'agent-manifest.json'), JSON.stringify(manifest))
    return manifest.version
  }

  /** Probes both ports from the client until `done` holds; every outcome seen, per port. */
  const probeUntil = async (done: () => Promise<boolean>, ms: number) => {
    const seen = { allowed: new Map<string, number>(), blocked: new Map<string, number>() }
    const count = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1)
    const host = lab.host('host').ip4
    const end = Date.now() + ms
    for (;;) {
      const [a, b] = await client.probe(
        [
          { proto: 'tcp', host, port: ALLOWED },
          { proto: 'tcp', host, port: BLOCKED },
        ],
        300,
      )
      count(seen.allowed, a ?? '?')
      count(seen.blocked, b ?? '?')
      if (await done()) return seen
      if (Date.now() > end)
        throw new Error(`timed out; the agent's log:\n${(await log()).slice(-3000)}`)
    }
  }
  /**
   * Still ordered, a release rolled back is not tried again: three more heartbeats, each
   * answered with the order, and the same process keeps running `build`.
   */
  const staysOn = async (build: Buffer) => {
    const pid = await agentPid()
    expect(sha(await readFile(exe))).toBe(sha(build))
    const heartbeat = async () => String((await api('GET', `/api/v2${venHref}`)).last_heartbeat_at)
    let last = await heartbeat()
    for (let i = 0; i < 3; i++)
      last = await waitFor(
        'a heartbeat',
        async () => {
          const h = await heartbeat()
          return h !== last ? h : undefined
        },
        10_000,
        200,
      )
    expect(await agentPid()).toBe(pid)
    expect(sha(await readFile(exe))).toBe(sha(build))
  }
  const events = async (type: string) =>
    (await server.api('GET', `/api/v2/orgs/1/events?event_type=${type}`)).body as {
      notifications?: { info?: Record<string, unknown> }[]
    }[]
  /** The server reachable from the host, or refused at once (a reset, not a silent drop). */
  const cutServer = (cut: boolean) =>
    runChecked(
      lab.host('srv').run,
      'nft',
      cut
        ? [
            'add table inet cut { chain in { type filter hook input priority -10; tcp dport 8443 ip saddr ' +
              lab.host('host').ip4 +
              ' reject with tcp reset; }; }',
          ]
        : ['delete table inet cut'],
    )

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'palisade-upgrade-test-'))
    const pkg = join(work, 'package')
    served = join(work, 'served')
    stateDir = join(work, 'state')
    exe = join(work, 'bin', 'palisade-agent')
    const built = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'scripts/package-agent.ts'), '--out', pkg],
      { cwd: ROOT },
    )
    console.log(built.stdout.trim())
    await mkdir(served)
    await mkdir(join(work, 'bin'))
    for (const f of ['agent-manifest.json', 'install.sh', 'palisade-agent.service', FILE])
      await copyFile(join(pkg, f), join(served, f))
    v1 = await readFile(join(pkg, FILE))
    await copyFile(join(pkg, FILE), exe)

    lab = await Lab.create(['srv', 'host', 'client'])
    server = await LabServer.start(lab.host('srv').ns, lab.host('srv').ip4, 8443, [
      '--agent-dir',
      served,
    ])
    const app = String(
      (await api('POST', '/api/v2/orgs/1/labels', { key: 'role', value: 'app' }, 201)).href,
    )
    const code = await server.activationCode('app', [app], 'full')
    // An allow rule for one port from anywhere; the other port is blocked by full enforcement.
    const rs = await api(
      'POST',
      '/api/v2/orgs/1/sec_policy/draft/rule_sets',
      { name: 'app', scopes: [[{ label: { href: app } }]] },
      201,
    )
    await api(
      'POST',
      `/api/v2${String(rs.href)}/sec_rules`,
      {
        providers: [{ label: { href: app } }],
        consumers: [{ ip_list: { href: '/orgs/1/sec_policy/draft/ip_lists/1' } }],
        ingress_services: [{ port: ALLOWED, proto: 6 }],
      },
      201,
    )
    await api('POST', '/api/v2/orgs/1/sec_policy', { update_description: 'app' }, 201)

    // The one-file agent, paired and started as the install script does (without systemd).
    const inHost = ['netns', 'exec', lab.host('host').ns, exe]
    await runChecked(runLocal, 'ip', [
      ...inHost,
      'activate',
      '--management-server',
      server.endpoint,
      '--activation-code',
      code,
      '--ca-cert',
      server.bootstrap.ca_cert,
      '--state-dir',
      stateDir,
      '--hostname',
      'app1',
      '--backend',
      'nftables',
    ])
    const config = join(stateDir, 'config.json')
    await writeFile(
      config,
      JSON.stringify({
        ...(JSON.parse(await readFile(config, 'utf8')) as object),
        heartbeatMs: 500,
        upgradeTrialMs: TRIAL_MS,
      }),
    )
    // Started as the unit the install script writes for these paths would start it.
    const unit = await runChecked(runLocal, 'ip', [
      'netns',
      'exec',
      lab.host('host').ns,
      'sh',
      '-c',
      `curl -fsS --cacert ${server.bootstrap.ca_cert} https://${server.endpoint}/agent/install.sh | sh -s -- --print-unit --state-dir ${stateDir} --install-dir ${join(work, 'bin')}`,
    ])
    expect(directive(unit, 'ExecStart')).toEqual([`${exe} run --state-dir ${stateDir}`])
    expect(directive(unit, 'ReadWritePaths')).toContain(join(work, 'bin'))
    // The start guard, installed beside the agent as the install script installs it.
    await writeFile(
      join(work, 'bin', 'palisade-agent.start-guard'),
      await runChecked(runLocal, 'ip', [
        'netns',
        'exec',
        lab.host('host').ns,
        'sh',
        '-c',
        `curl -fsS --cacert ${server.bootstrap.ca_cert} https://${server.endpoint}/agent/install.sh | sh -s -- --print-start-guard`,
      ]),
    )
    const standIn = unitStandIn(unit, join(work, 'outside'), join(work, 'sandboxed.sh'))
    await writeFile(join(work, 'sandboxed.sh'), standIn.sandboxed)
    const out = openSync(join(work, 'agent.log'), 'a')
    const systemd = spawn(
      'ip',
      ['netns', 'exec', lab.host('host').ns, 'sh', '-c', standIn.supervisor],
      { detached: true, stdio: ['ignore', out, out] },
    )
    systemd.unref()

    listener = LabPeer.start(lab.host('host').ns)
    await listener.listen([ALLOWED, BLOCKED], [])
    client = LabPeer.start(lab.host('client').ns)
    const w = await waitFor(
      'the agent to be synced',
      async () => {
        const list = (await server.apiOk(
          'GET',
          '/api/v2/orgs/1/workloads?hostname=app1&match_type=exact',
          undefined,
          200,
        )) as unknown as {
          agent: { href: string; status: { security_policy_sync_state: string } }
        }[]
        return list[0]?.agent.status.security_policy_sync_state === 'synced' ? list[0] : undefined
      },
      30_000,
      250,
    )
    venHref = w.agent.href.replace('/agents/', '/vens/')
  }, 180_000)

  afterAll(async () => {
    // The stand-in's loop and the agent are stopped by the lab's destroy, found by namespace.
    await client?.stop()
    await listener?.stop()
    await server?.cleanup()
    await lab?.destroy()
    await rm(work, { recursive: true, force: true })
  })

  it('upgrades a running agent: downloaded, checked, swapped, restarted; the allowed port stays open and the blocked one blocked throughout', async () => {
    expect(
      await client.probe([
        { proto: 'tcp', host: lab.host('host').ip4, port: ALLOWED },
        { proto: 'tcp', host: lab.host('host').ip4, port: BLOCKED },
      ]),
    ).toEqual(['open', 'timeout'])
    const before = await agentPid()
    const v2 = Buffer.concat([v1, Buffer.from('\npalisade test release 2\n')])
    const release = await serve(v2)
    const r = await api('PUT', '/api/v2/orgs/1/vens/upgrade', {
      release,
      vens: [{ href: venHref }],
    })
    expect(r).toEqual({ release, vens_upgraded: 1, errors: [] })
    const seen = await probeUntil(
      async () =>
        (await events('agent.upgrade')).some((e) => e.notifications?.[0]?.info?.sha256 === sha(v2)),
      60_000,
    )
    console.log(
      `probes across the upgrade: ${JSON.stringify(Object.fromEntries(Object.entries(seen).map(([k, m]) => [k, Object.fromEntries(m)])))}`,
    )
    expect([...seen.allowed.keys()], 'the allowed port: open every time').toEqual(['open'])
    expect([...seen.blocked.keys()], 'the blocked port: blocked every time').toEqual(['timeout'])
    const after = await agentPid()
    expect(after).not.toBe(before)
    expect(await readlink(`/proc/${after}/exe`)).toBe(exe)
    // The new build runs in the unit's sandbox too: the system read-only, its directory not.
    const mounts = (await readFile(`/proc/${after}/mountinfo`, 'utf8')).split('\n')
    const options = (at: string) =>
      mounts.map((l) => l.split(' ')).findLast((f) => f[4] === at)?.[5]
    expect(options('/')).toMatch(/^ro,/)
    expect(options(join(work, 'bin'))).toMatch(/^rw,/)
    expect(sha(await readFile(exe))).toBe(sha(v2))
    expect(sha(await readFile(`${exe}.previous`))).toBe(sha(v1))
    expect((await api('GET', `/api/v2${venHref}`)).target_release).toBe(release)
  }, 120_000)

  it('rolls back a new build that does not report within its trial, keeps enforcing, and says so', async () => {
    const v2 = await readFile(exe)
    const v3 = Buffer.concat([v1, Buffer.from('\npalisade test release 3\n')])
    const release = await serve(v3)
    await api('PUT', '/api/v2/orgs/1/vens/upgrade', { release, vens: [{ href: venHref }] })
    // Once the new build is in place, the host cannot reach the server for its whole trial.
    const trial = join(stateDir, 'upgrade.json')
    const seen = await probeUntil(async () => {
      const m = await readFile(trial, 'utf8').catch(() => '')
      return m.includes('"trial"')
    }, 60_000)
    await cutServer(true)
    const during = await probeUntil(async () => {
      const m = await readFile(trial, 'utf8').catch(() => '')
      return m.includes('"rolled_back"') && sha(await readFile(exe)) === sha(v2)
    }, TRIAL_MS + 60_000)
    // Back: the previous build runs, reports, and the rollback reaches the server.
    await cutServer(false)
    const back = await probeUntil(
      async () =>
        (await events('agent.upgrade_failed')).some(
          (e) => e.notifications?.[0]?.info?.rolled_back === true,
        ),
      60_000,
    )
    for (const s of [seen, during, back]) {
      expect([...s.allowed.keys()], 'the allowed port: open every time').toEqual(['open'])
      expect([...s.blocked.keys()], 'the blocked port: blocked every time').toEqual(['timeout'])
    }
    const failed = (await events('agent.upgrade_failed'))[0]?.notifications?.[0]?.info
    expect(failed).toMatchObject({ release, rolled_back: true })
    expect(String(failed?.reason)).toContain(
      `it did not report to the server within ${TRIAL_MS} ms`,
    )
    expect(await readlink(`/proc/${await agentPid()}/exe`)).toBe(exe)
    await staysOn(v2)
  }, 180_000)

  it("rolls back a build that crashes at start, before any of its code runs: the unit's start guard puts the previous build back at its fourth start, and it reports the rollback", async () => {
    const v2 = await readFile(exe)
    const { version } = JSON.parse(
      await readFile(join(served, 'agent-manifest.json'), 'utf8'),
    ) as Manifest
    // It passes the agent's checks (the SHA-256 ordered, `--version`), then dies of a signal at
    // every start, as a build cut short or corrupted where `--version` does not reach would.
    const crasher = Buffer.from(
      `#!/bin/sh\n# palisade test release 4: crashes at start\n[ "$1" != --version ] || { echo ${version}; exit 0; }\nkill -s SEGV $$\n`,
    )
    const release = await serve(crasher)
    await api('PUT', '/api/v2/orgs/1/vens/upgrade', { release, vens: [{ href: venHref }] })
    const before = (await log()).length
    const swapped = await probeUntil(async () => sha(await readFile(exe)) === sha(crasher), 60_000)
    const swappedAt = performance.now()
    const restored = await probeUntil(async () => sha(await readFile(exe)) === sha(v2), 60_000)
    const restoredAt = performance.now()
    const running = await probeUntil(async () => {
      const pid = await agentPid()
      const exeOf = await readFile(`/proc/${pid}/exe`).catch(() => undefined)
      return (
        exeOf !== undefined &&
        sha(exeOf) === sha(v2) &&
        (await log()).includes('"msg":"agent started"', before)
      )
    }, 60_000)
    const runningAt = performance.now()
    const reason = (e: { notifications?: { info?: Record<string, unknown> }[] }) => {
      const r = e.notifications?.[0]?.info?.reason
      return typeof r === 'string' ? r : ''
    }
    const reported = await probeUntil(
      async () =>
        (await events('agent.upgrade_failed')).some((e) => reason(e).includes('start guard')),
      60_000,
    )
    const reportedAt = performance.now()
    console.log(
      `a build that crashes at start: swapped in -> previous build back ${Math.round(restoredAt - swappedAt)} ms, -> its agent running ${Math.round(runningAt - swappedAt)} ms, -> the rollback at the server ${Math.round(reportedAt - swappedAt)} ms (probe rounds of 0.3 s or more)`,
    )
    for (const s of [swapped, restored, running, reported]) {
      expect([...s.allowed.keys()], 'the allowed port: open every time').toEqual(['open'])
      expect([...s.blocked.keys()], 'the blocked port: blocked every time').toEqual(['timeout'])
    }
    const failed = (await events('agent.upgrade_failed')).find((e) =>
      reason(e).includes('start guard'),
    )?.notifications?.[0]?.info
    expect(failed).toMatchObject({
      release,
      rolled_back: true,
      reason: `release ${release} was rolled back to version ${version}: it was started 3 times without reporting to the server (it did not start: a corrupt build, or one that exits at once), and the unit's start guard put the previous build back`,
    })
    // Three starts of the new build, each dead of its signal, then the guard; never the limit.
    const since = (await log()).slice(before)
    expect(since.match(/systemd stand-in: the agent exited with 139/g)).toHaveLength(3)
    expect(since).toContain(
      `palisade start guard: the new build ${exe} was started 3 times without reporting: the previous build is back in place`,
    )
    expect(since).not.toContain('start limit hit')
    await staysOn(v2)
  }, 180_000)
})
