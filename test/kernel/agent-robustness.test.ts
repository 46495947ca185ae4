/**
 * The agent under failure: killed with SIGKILL in the middle of applies, blocked by another
 * process holding the xtables lock, and with its tools missing or failing.
 */
import { readOwn } from '@palisade/agent'
import type { Backend, Desired, Ruleset } from '@palisade/firewall'
import { BACKENDS, compile, diff, findTable, planApply } from '@palisade/firewall'
import { Lab, LabAgent, resetFirewall, waitFor } from '@palisade/lab'
import { DEFAULT_FAILSAFE, hostPolicyFromLocalFile } from '@palisade/model'
import { spawn } from 'node:child_process'
import { chmod, mkdir, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

/**
 * Kills per backend. Each falls in its own slice of the apply's window (at a random point
 * within it), so a few dozen cover the window evenly; PALISADE_KILL_RUNS=200 for a longer run.
 */
const KILLS = Number(process.env.PALISADE_KILL_RUNS ?? 50)

/** Two policies that differ in rules and in every set element, so any mix would show. */
function policy(version: number) {
  const b = version % 2
  const peers = Array.from(
    { length: 2000 },
    (_, i) => `198.${18 + b}.${(i >> 7) & 255}.${(i & 127) * 2}`,
  )
  return {
    version,
    enforcement_mode: 'full',
    firewall_coexistence: { illumio_primary: true },
    rules: [
      { action: 'allow', direction: 'inbound', peers, services: [{ proto: 6, port: 80 + b }] },
      ...(b === 1
        ? [
            {
              action: 'deny',
              direction: 'inbound',
              peers: 'any',
              services: [{ proto: 17, port: 53 }],
            },
          ]
        : []),
      {
        action: 'allow',
        direction: 'outbound',
        peers: [`198.${18 + b}.200.0/24`],
        services: [{ proto: 6, port: 443 }],
      },
    ],
  }
}
const desiredOf = (backend: Backend, version: number) =>
  compile(hostPolicyFromLocalFile(policy(version)), { backend, failsafe: DEFAULT_FAILSAFE })

/** Our objects that are neither exactly as in `a` nor exactly as in `b` (each table, chain set and ipset on its own). */
function mixedObjects(actual: Ruleset, a: Desired, b: Desired): string[] {
  const bad: string[] = []
  const same = (d: Desired, pick: (r: Ruleset) => Ruleset) =>
    planApply(d, diff(d, pick(actual))).kind === 'none'
  if (a.backend === 'nftables') {
    if (!same(a, (r) => r) && !same(b, (r) => r)) bad.push('table inet palisade')
    return bad
  }
  for (const family of ['ip', 'ip6'] as const) {
    const only = (d: Desired): Desired => ({
      ...d,
      tables: d.tables.filter((t) => t.family === family),
      hooks: d.hooks.filter((h) => h.family === family),
      ipsets: [],
    })
    const pick = (r: Ruleset): Ruleset => ({
      tables: r.tables.filter((t) => t.family === family),
      ipsets: [],
    })
    if (!same(only(a), pick) && !same(only(b), pick)) bad.push(`${family} filter`)
  }
  // Each ipset the rules use, on its own: exactly the content one of the two states gives it.
  // A set no rule refers to enforces nothing: it is staging (created before the rules that will
  // use it commit) or left over (destroyed once the rules stopped using it).
  const used = new Set(
    actual.tables.flatMap((t) =>
      t.chains.flatMap((c) =>
        c.rules.flatMap((r) =>
          r.matches.flatMap((m) => (m.kind === 'addr' && m.set ? [m.set] : [])),
        ),
      ),
    ),
  )
  for (const name of used) {
    const have = actual.ipsets.find((s) => s.name === name)
    const ok = [a, b].some((d) => {
      const want = d.ipsets.find((s) => s.name === name)
      return want !== undefined && have?.elements.join() === want.elements.join()
    })
    if (!ok) bad.push(`ipset ${name}`)
  }
  return bad
}

describe('agent robustness (real kernel)', () => {
  let lab: Lab
  beforeAll(async () => {
    lab = await Lab.create(['r1'])
  })
  afterAll(async () => {
    await lab?.destroy()
  })

  for (const backend of BACKENDS) {
    it(`${backend}: SIGKILL at random points of ${KILLS} applies leaves the old or the new ruleset, and a restart converges`, async () => {
      const h = lab.host('r1')
      const agent = await LabAgent.start(h.ns, backend, policy(1))
      const outcomes = { old: 0, new: 0, mixed: 0 }
      try {
        // The kills are spread over 1.5 times what a reload takes this agent until it reports
        // the new policy applied (the median of three, before the kills), so that they land
        // before its commit and after it alike. (Sized by the apply's own time, it missed the
        // commit every time once applies took a few ms.)
        const reloads: number[] = []
        for (const v of [2, 3, 4]) {
          const t0 = performance.now()
          await agent.writePolicy(policy(v))
          agent.reload()
          await agent.waitApplied(v)
          reloads.push(performance.now() - t0)
        }
        const window = 1.5 * (reloads.sort((a, b) => a - b)[1] ?? 100)
        for (let i = 1; i <= KILLS; i++) {
          const before = i + 3
          const next = before + 1
          await agent.writePolicy(policy(next))
          agent.reload()
          // Kill in slice i of the window.
          await new Promise((r) => setTimeout(r, ((i - 1 + Math.random()) / KILLS) * window))
          await agent.stop('SIGKILL')
          const actual = await readOwn(h.run, backend)
          const bad = mixedObjects(actual, desiredOf(backend, before), desiredOf(backend, next))
          expect(bad, `kill #${i}: objects that are neither old nor new`).toEqual([])
          const d = desiredOf(backend, next)
          if (planApply(d, diff(d, actual)).kind === 'none') outcomes.new++
          else outcomes.old++
          agent.spawn()
          await agent.waitApplied(next)
        }
      } finally {
        await agent.cleanup()
        await resetFirewall(h.run)
      }
      console.log(
        `${backend}: ${KILLS} kills, ruleset found old ${outcomes.old} times, new ${outcomes.new} times, never mixed`,
      )
      // The kill must land both before and after the commit for the test to mean anything.
      expect(outcomes.old).toBeGreaterThan(0)
      expect(outcomes.new).toBeGreaterThan(0)
    }, 600_000)
  }

  for (const holdSeconds of [2, 30]) {
    it(`iptables-legacy: another process holds the xtables lock for ${holdSeconds} s`, async () => {
      const h = lab.host('r1')
      // A lock file of this test's own (iptables reads XTABLES_LOCKFILE): the host's
      // /run/xtables.lock is shared by every namespace and is never held here.
      const lock = join(tmpdir(), `palisade-xtables-${process.pid}-${holdSeconds}.lock`)
      const locked = async () =>
        (await h.run('flock', ['-n', lock, 'true']).catch(() => ({ code: -1 }))).code !== 0
      const agent = await LabAgent.start(h.ns, 'iptables-legacy', policy(1), {
        XTABLES_LOCKFILE: lock,
      })
      const holder = spawn('flock', ['-x', lock, 'sleep', String(holdSeconds)], {
        stdio: 'ignore',
      })
      try {
        await waitFor('the lock to be held', async () => ((await locked()) ? true : undefined))
        await agent.writePolicy(policy(2))
        agent.reload()
        // The agent's restore waits on the lock: seen as a child of its tool shell (or its own,
        // run once) while the lock is held, with the old ruleset intact.
        await waitFor('the agent to wait for the lock', async () => {
          const children = await h.run('pgrep', ['-P', String(agent.pid)])
          const parents = [String(agent.pid), ...children.stdout.split('\n').filter(Boolean)]
          const r = await h.run('pgrep', ['-P', parents.join(','), '-f', 'iptables-legacy-restore'])
          return r.code === 0 ? true : undefined
        })
        expect(await locked(), 'the lock is still held while the agent waits').toBe(true)
        expect(
          mixedObjects(
            await readOwn(h.run, 'iptables-legacy'),
            desiredOf('iptables-legacy', 1),
            desiredOf('iptables-legacy', 1),
          ),
        ).toEqual([])
        if (holdSeconds > 5) {
          const s = await waitFor(
            'the agent to report the lock',
            async () => {
              const st = await agent.status()
              return st?.enforcement.health === 'unhealthy' ? st : undefined
            },
            15_000,
          )
          expect(s.enforcement.reason).toMatch(/iptables-legacy-restore .*failed .*: lock busy/)
          // the old ruleset is intact while the lock is held
          expect(
            mixedObjects(
              await readOwn(h.run, 'iptables-legacy'),
              desiredOf('iptables-legacy', 1),
              desiredOf('iptables-legacy', 1),
            ),
          ).toEqual([])
          expect(agent.running).toBe(true)
        }
        const s = await agent.waitApplied(2, (holdSeconds + 40) * 1000)
        expect(s.enforcement.health).toBe('healthy')
      } finally {
        holder.kill('SIGKILL')
        await agent.cleanup()
        await resetFirewall(h.run)
        await rm(lock, { force: true })
      }
    }, 120_000)
  }

  describe('tools missing or failing', () => {
    const bin = join(tmpdir(), `palisade-fake-bin-${process.pid}`)
    beforeAll(async () => {
      await mkdir(bin, { recursive: true })
    })
    afterAll(async () => {
      await rm(bin, { recursive: true, force: true })
    })

    /** A PATH where `tool` fails with a message (or, with `missing`, does not exist at all). */
    async function pathWith(tool: string, missing: boolean): Promise<string> {
      const dir = join(bin, `${tool}-${missing ? 'missing' : 'failing'}`)
      await mkdir(dir, { recursive: true })
      for (const t of [
        'nft',
        'iptables-nft-save',
        'ip6tables-nft-save',
        'iptables-legacy-save',
        'ip6tables-legacy-save',
        'iptables-nft-restore',
        'ip6tables-nft-restore',
        'iptables-legacy-restore',
        'ip6tables-legacy-restore',
        'ipset',
        'systemctl',
      ]) {
        if (t === tool) continue
        await symlink(`/usr/sbin/${t}`, join(dir, t)).catch(() => undefined)
      }
      if (!missing) {
        await writeFile(
          join(dir, tool),
          '#!/bin/sh\necho "simulated failure of this tool" >&2\nexit 1\n',
        )
        await chmod(join(dir, tool), 0o755)
      }
      return `${dir}:/usr/bin:/bin`
    }

    it.each([
      ['nftables', 'nft', true, /not installed/],
      // the tool's own words stay on the host: the reason says only that it failed
      ['nftables', 'nft', false, /nft .*failed \(exit code 1\): failed$/],
      [
        'iptables-nft',
        'iptables-nft-restore',
        false,
        /iptables-nft-restore .*failed \(exit code 1\): failed$/,
      ],
      [
        'iptables-legacy',
        'iptables-legacy-restore',
        true,
        /iptables-legacy.*not installed|not installed/,
      ],
    ] as const)(
      '%s with %s missing=%s: unhealthy with the reason, still running, no rules half-made',
      async (backend, tool, missing, reason) => {
        const h = lab.host('r1')
        const agent = await LabAgent.launch(h.ns, backend, policy(1), {
          PATH: await pathWith(tool, missing),
        })
        try {
          const s = await waitFor(`the agent to report ${tool}`, async () => {
            const st = await agent.status()
            return st?.enforcement.health === 'unhealthy' ? st : undefined
          })
          expect(s.enforcement.reason).toMatch(reason)
          await new Promise((r) => setTimeout(r, 2000))
          expect(agent.running, `the agent must not exit (log: ${agent.log.slice(-300)})`).toBe(
            true,
          )
          const retries = (await agent.events()).filter(
            (e) =>
              e.event_type === 'agent.firewall_apply_failed' || e.event_type === 'agent.health',
          ).length
          expect(retries, 'failures are reported once, not once per retry').toBe(1)
          expect(JSON.stringify(await agent.events())).not.toContain('simulated failure')
          const own = await readOwn(h.run, backend)
          const ours =
            backend === 'nftables'
              ? own.tables
              : (findTable(own, backend, 'ip', 'filter')?.chains.filter((c) =>
                  c.name.startsWith('PALISADE-'),
                ) ?? [])
          expect(ours, 'nothing half-made').toEqual([])
        } finally {
          await agent.cleanup()
          await resetFirewall(h.run)
        }
      },
    )
  })
})
