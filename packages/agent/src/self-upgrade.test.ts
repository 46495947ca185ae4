import { createHash } from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { spawnSync } from 'node:child_process'
import type { Server } from 'node:http'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AgentBuild, UpgradeOrder } from '@palisade/protocol'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { drain, FakeClock } from './clock-fake.fixture.js'
import type { AgentEvent } from './events.js'
import type { UpgradeMarker } from './self-upgrade.js'
import { SelfUpgrade } from './self-upgrade.js'
import { ServerClient } from './server-client.js'
import { ensureStateDir } from './state-dir.js'

/** Builds stand for the one-file agent: executables that answer `--version`, run for real. */
const build = (version: string) => Buffer.from(`#!/bin/sh\necho ${version}\n`)
const OLD = build('0.1.0')
const NEW = build('0.2.0')
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
const order = (b = NEW, release = '0.2.0'): UpgradeOrder => ({
  release,
  sha256: sha(b),
  size: b.length,
})
const TRIAL_MS = 60_000

/** The systemd unit's start guard, as the install script writes it. */
const START_GUARD = (() => {
  const script = readFileSync(new URL('../../../packaging/install.sh', import.meta.url), 'utf8')
  const m = /<<'PALISADE_START_GUARD'\n([\s\S]*?)\nPALISADE_START_GUARD\n/.exec(script)
  if (!m?.[1]) throw new Error('install.sh carries no start guard')
  return m[1]
})()

describe('self-upgrade', () => {
  /** What the test's server serves at the download route, and how often it was asked. */
  let served = NEW
  let downloads = 0
  let server: Server
  let url: string
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url !== '/agent/palisade-agent-linux-x64') return res.writeHead(404).end('[]')
      downloads++
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(served)
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(() => new Promise<void>((r) => server.close(() => r())))

  const dirs: string[] = []
  afterEach(() => {
    served = NEW
    downloads = 0
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  })

  /** A host with the old build installed, and the agent process `runs` (its build and clock). */
  const host = async () => {
    const dir = mkdtempSync(join(tmpdir(), 'palisade-upgrade-'))
    dirs.push(dir)
    const bin = join(dir, 'bin')
    const exe = join(bin, 'palisade-agent')
    const paths = await ensureStateDir(join(dir, 'state'))
    mkdirSync(bin)
    writeFileSync(exe, OLD, { mode: 0o755 })
    const events: AgentEvent[] = []
    const restarts: string[] = []
    let last: SelfUpgrade | undefined
    /** Lets what the newest process has under way end (real I/O, a real child process). */
    const settle = async () => {
      await drain()
      await last?.idle()
    }
    const runs = (
      b: Buffer,
      version: string,
      clock = new FakeClock(),
      o: { executable?: string | undefined } = { executable: exe },
    ) => {
      const self: AgentBuild = { version, arch: 'x64', sha256: sha(b) }
      const u = new SelfUpgrade({
        paths,
        clock,
        build: self,
        executable: o.executable,
        client: new ServerClient({ url }),
        trialMs: TRIAL_MS,
        record: (e) => events.push(e),
        log: () => undefined,
        restart: (why) => restarts.push(why),
      })
      last = u
      return { u, clock }
    }
    const marker = () =>
      existsSync(paths.upgrade)
        ? (JSON.parse(readFileSync(paths.upgrade, 'utf8')) as UpgradeMarker)
        : undefined
    const installed = () => readFileSync(exe)
    return { exe, bin, paths, events, restarts, runs, marker, installed, settle }
  }

  it('downloads, checks and swaps the build, keeps the old one, restarts; the new build passes once it reports', async () => {
    const h = await host()
    const old = h.runs(OLD, '0.1.0')
    expect(await old.u.resume()).toBe('run')
    old.u.order(order())
    await h.settle()
    expect(h.restarts).toEqual(['upgrade to release 0.2.0'])
    expect(h.installed().equals(NEW)).toBe(true)
    expect(readFileSync(`${h.exe}.previous`).equals(OLD)).toBe(true)
    expect(readdirSync(h.bin).sort()).toEqual(['palisade-agent', 'palisade-agent.previous'])
    expect(h.marker()).toEqual({
      state: 'trial',
      release: '0.2.0',
      from: { version: '0.1.0', sha256: sha(OLD) },
      to_sha256: sha(NEW),
      executable: h.exe,
      previous: `${h.exe}.previous`,
      deadline_at: '2025-01-01T00:01:00.000Z',
    })
    expect(h.events).toEqual([])
    // Ordered again before this process has gone (the order polled while it stops): nothing
    // more is done. Done again, the build kept would be the new one, and no rollback possible.
    old.u.order(order())
    await h.settle()
    expect(downloads).toBe(1)
    expect(readFileSync(`${h.exe}.previous`).equals(OLD)).toBe(true)
    expect(h.restarts).toHaveLength(1)

    // The new build starts, reports within its minute, and the trial ends.
    const fresh = h.runs(NEW, '0.2.0')
    expect(await fresh.u.resume()).toBe('run')
    await fresh.clock.advance(TRIAL_MS - 1)
    fresh.u.reported()
    await h.settle()
    expect(h.marker()).toBeUndefined()
    expect(h.events.map((e) => [e.event_type, e.details])).toEqual([
      [
        'agent.upgrade',
        { release: '0.2.0', from_version: '0.1.0', version: '0.2.0', sha256: sha(NEW) },
      ],
    ])
    await fresh.clock.advance(TRIAL_MS)
    expect(h.installed().equals(NEW), 'nothing rolled back after it passed').toBe(true)
    expect(h.restarts).toHaveLength(1)
    // Ordered again, it runs the release already: nothing is downloaded.
    fresh.u.order(order())
    await h.settle()
    expect(downloads).toBe(1)
  })

  it('rolls back a new build that does not report within its trial, says so, and does not try that release again', async () => {
    const h = await host()
    h.runs(OLD, '0.1.0').u.order(order())
    await h.settle()
    const fresh = h.runs(NEW, '0.2.0')
    expect(await fresh.u.resume()).toBe('run')
    await fresh.clock.advance(TRIAL_MS - 1)
    expect(h.installed().equals(NEW)).toBe(true)
    await fresh.clock.advance(1)
    await h.settle()
    expect(h.installed().equals(OLD), 'the old build is back in place').toBe(true)
    expect(h.restarts).toEqual(['upgrade to release 0.2.0', 'rolled back from release 0.2.0'])
    expect(h.events.map((e) => [e.event_type, e.severity, e.details])).toEqual([
      [
        'agent.upgrade_failed',
        'err',
        {
          release: '0.2.0',
          reason: `release 0.2.0 was rolled back to version 0.1.0: it did not report to the server within ${TRIAL_MS} ms`,
          rolled_back: true,
          version: '0.1.0',
        },
      ],
    ])
    expect(h.marker()).toMatchObject({ state: 'rolled_back', to_sha256: sha(NEW) })

    // The old build runs again; the server still orders 0.2.0: it is not tried again.
    const back = h.runs(OLD, '0.1.0')
    expect(await back.u.resume()).toBe('run')
    back.u.order(order())
    await h.settle()
    expect(downloads).toBe(1)
    expect(h.installed().equals(OLD)).toBe(true)
  })

  it('rolls back at start a new build that was restarted after its deadline (it crashed or hung)', async () => {
    const h = await host()
    h.runs(OLD, '0.1.0').u.order(order())
    await h.settle()
    const late = new FakeClock()
    await late.advance(TRIAL_MS + 5000)
    expect(await h.runs(NEW, '0.2.0', late).u.resume()).toBe('restart')
    expect(h.installed().equals(OLD)).toBe(true)
    expect(h.events[0]?.details).toMatchObject({
      rolled_back: true,
      reason:
        'release 0.2.0 was rolled back to version 0.1.0: it did not report to the server by 2025-01-01T00:01:00.000Z',
    })
  })

  it("a new build that never starts is put back by the unit's start guard at its fourth start; the old build reports it and does not try it again", async () => {
    const h = await host()
    h.runs(OLD, '0.1.0').u.order(order())
    await h.settle()
    writeFileSync(join(h.bin, 'palisade-agent.start-guard'), START_GUARD)
    /** systemd's ExecStartPre; the new build then crashes at once, so none of its code runs. */
    const start = () => {
      const r = spawnSync('sh', [join(h.bin, 'palisade-agent.start-guard'), h.exe, h.paths.dir])
      return [r.status, r.stderr.toString()]
    }
    for (let i = 1; i <= 3; i++) {
      expect(start()).toEqual([0, ''])
      expect(h.installed().equals(NEW), `start ${i}: the new build`).toBe(true)
      expect(readFileSync(h.paths.upgradeStarts, 'utf8')).toBe(`${i}\n`)
    }
    expect(start()).toEqual([
      0,
      `palisade start guard: the new build ${h.exe} was started 3 times without reporting: the previous build is back in place\n`,
    ])
    expect(h.installed().equals(OLD), 'the fourth start: the old build').toBe(true)
    expect(existsSync(`${h.exe}.previous`)).toBe(false)

    const back = h.runs(OLD, '0.1.0')
    expect(await back.u.resume()).toBe('run')
    expect(h.events.map((e) => [e.event_type, e.details])).toEqual([
      [
        'agent.upgrade_failed',
        {
          release: '0.2.0',
          reason:
            "release 0.2.0 was rolled back to version 0.1.0: it was started 3 times without reporting to the server (it did not start: a corrupt build, or one that exits at once), and the unit's start guard put the previous build back",
          rolled_back: true,
          version: '0.1.0',
        },
      ],
    ])
    expect(h.marker()).toMatchObject({ state: 'rolled_back', to_sha256: sha(NEW) })
    expect(existsSync(h.paths.upgradeStarts)).toBe(false)
    back.u.order(order())
    await h.settle()
    expect(downloads).toBe(1)
    // Started again, with no trial: the guard counts nothing and changes nothing.
    start()
    expect(existsSync(h.paths.upgradeStarts)).toBe(false)
    expect(h.installed().equals(OLD)).toBe(true)
  })

  it('the start guard leaves a new build that passed its trial alone', async () => {
    const h = await host()
    h.runs(OLD, '0.1.0').u.order(order())
    await h.settle()
    writeFileSync(join(h.bin, 'palisade-agent.start-guard'), START_GUARD)
    const start = () =>
      spawnSync('sh', [join(h.bin, 'palisade-agent.start-guard'), h.exe, h.paths.dir]).status
    expect(start()).toBe(0)
    const fresh = h.runs(NEW, '0.2.0')
    expect(await fresh.u.resume()).toBe('run')
    fresh.u.reported()
    await h.settle()
    expect(existsSync(h.paths.upgradeStarts)).toBe(false)
    for (let i = 0; i < 5; i++) expect(start()).toBe(0)
    expect(h.installed().equals(NEW)).toBe(true)
    expect(existsSync(h.paths.upgradeStarts)).toBe(false)
  })

  it('replaces nothing when the download is not what was ordered, says so once, and tries again later', async () => {
    const h = await host()
    served = build('6.6.6')
    const old = h.runs(OLD, '0.1.0')
    old.u.order(order())
    await h.settle()
    expect(h.installed().equals(OLD)).toBe(true)
    expect(readdirSync(h.bin)).toEqual(['palisade-agent'])
    expect(h.marker()).toBeUndefined()
    expect(h.restarts).toEqual([])
    expect(h.events.map((e) => e.details.reason)).toEqual([
      `the downloaded build is ${served.length} bytes with SHA-256 ${sha(served)}, not ${NEW.length} bytes with ${sha(NEW)} as ordered: nothing was replaced`,
    ])
    old.u.order(order())
    await h.settle()
    expect(downloads, 'not at every heartbeat').toBe(1)
    served = NEW
    await old.clock.advance(5 * 60_000)
    old.u.order(order())
    await h.settle()
    expect(downloads).toBe(2)
    expect(h.installed().equals(NEW)).toBe(true)
    expect(h.events, 'one event for the failure').toHaveLength(1)
  })

  it('refuses a build that does not say it is the release ordered', async () => {
    const h = await host()
    const liar = build('0.3.0')
    served = liar
    h.runs(OLD, '0.1.0').u.order(order(liar, '0.2.0'))
    await h.settle()
    expect(h.installed().equals(OLD)).toBe(true)
    expect(h.events.map((e) => e.details.reason)).toEqual([
      'the downloaded build says it is version 0.3.0, not 0.2.0: nothing was replaced',
    ])
  })

  it('an agent run from a source checkout says it cannot replace itself', async () => {
    const h = await host()
    h.runs(OLD, '0.1.0', new FakeClock(), { executable: undefined }).u.order(order())
    await h.settle()
    expect(downloads).toBe(0)
    expect(h.events.map((e) => e.details.reason)).toEqual([
      "this agent runs from a source checkout, not as the one-file agent, so it cannot replace itself with release 0.2.0: install the one-file agent (the server's install script)",
    ])
  })
})
