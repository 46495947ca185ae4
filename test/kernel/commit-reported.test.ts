/**
 * On iptables-nft, while the change monitor runs, what an apply's commits left is known from
 * what they met and wrote (filterAfterRestore) once the monitor reported each commit by the
 * process that made it: nothing is listed back. These prove that what it then knows is what the
 * kernel holds, in every mode and over foreign rules; that a commit the monitor did not report
 * (a tool that said it committed and did not) is listed back and found missing; and that
 * another process's change right after the commit is found by the next read. Each would fail
 * if the dataplane trusted the tool's word, or its own text over the kernel's events.
 */
import type { MonitorEvent, ProcessStarter, Runner } from '@palisade/agent'
import { applyDesired, KernelDataplane, readOwn, startLocal, systemClock } from '@palisade/agent'
import type { Desired, Ruleset } from '@palisade/firewall'
import { compile, diff, findTable, planApply } from '@palisade/firewall'
import { Lab } from '@palisade/lab'
import type { CoexistenceMode } from '@palisade/model'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { policyWithPeers } from '../../bench/peers.js'
import { SAMPLE_FAILSAFE } from '../../packages/firewall/src/host-policy.fixture.js'
import { asDiffed } from '../../packages/firewall/src/live.fixture.js'

const backend = 'iptables-nft'
const desiredIn = (mode: CoexistenceMode): Desired =>
  compile(policyWithPeers(50, mode), { backend, failsafe: SAMPLE_FAILSAFE })

describe('iptables-nft: what a commit the monitor reported left', () => {
  let ns: Awaited<ReturnType<typeof Lab.isolated>>
  beforeAll(async () => {
    ns = await Lab.isolated()
  })
  afterAll(() => ns.destroy())

  /**
   * A dataplane over the namespace with the change monitor running (seen working), the tools
   * it ran and the requests it wrote to its tool shell. Without `shell` its tool shell cannot
   * start: it runs its commits and listings as tools of their own, which `wrap` may change.
   */
  async function watched(o: { shell: boolean; wrap?: (run: Runner) => Runner }) {
    const empty = { ...desiredIn('exclusive'), tables: [], hooks: [], ipsets: [] }
    await applyDesired(ns.run, empty, await readOwn(ns.run, backend), { modeChanged: true })
    const ran: string[] = []
    const wrapped = o.wrap?.(ns.run) ?? ns.run
    const run: Runner = (cmd, args, opts) => {
      ran.push(cmd)
      return wrapped(cmd, args, opts)
    }
    const written: string[] = []
    const start: ProcessStarter = (cmd, args, on) => {
      const shell = cmd === 'sh' && args[0] === '-s'
      if (shell && !o.shell) return startLocal('/nonexistent/sh', [], on)
      const p = startLocal('ip', ['netns', 'exec', ns.ns, cmd, ...args], on)
      return shell ? { ...p, write: (text) => (written.push(text), p.write(text)) } : p
    }
    const dp = new KernelDataplane(run, backend, start, systemClock)
    const seen: MonitorEvent[] = []
    const watch = dp.watch((e) => seen.push(e))
    // The monitor runs once it reports a change: one made by another process.
    for (let i = 0; i < 100 && seen.length === 0; i++) {
      await ns.run('iptables-nft', ['-w', '-t', 'mangle', '-N', `PROBE${i}`])
      await new Promise((r) => setTimeout(r, 20))
    }
    expect(seen.length).toBeGreaterThan(0)
    const stop = () => {
      watch.stop()
      dp.close()
    }
    /** Listings of the filter tables, by the shell or as tools of their own. */
    const saves = () =>
      written.filter((l) => l.includes('tables-nft-save')).length +
      ran.filter((c) => c.endsWith('tables-nft-save')).length
    const committed = () => written.flatMap((l) => /^'([\w-]+-restore)' .* <'/m.exec(l)?.[1] ?? [])
    return { dp, ran, saves, committed, stop }
  }

  it('knows what the kernel holds, listing nothing back, in every mode, over foreign rules', async () => {
    const { dp, ran, saves, committed, stop } = await watched({ shell: true })
    try {
      await ns.run('iptables-nft', '-w -I INPUT -p tcp --dport 22 -j ACCEPT'.split(' '))
      await ns.run('ip6tables-nft', '-w -I OUTPUT -p udp --dport 53 -j ACCEPT'.split(' '))
      /** The foreign rules standing before our hook in IPv4 INPUT and IPv6 OUTPUT. */
      const foreignFirst = (rs: Ruleset) =>
        (['ip', 'ip6'] as const).map((family) => {
          const chain = family === 'ip' ? 'INPUT' : 'OUTPUT'
          const rules = findTable(rs, backend, family, 'filter')?.chains.find(
            (c) => c.name === chain,
          )?.rules
          return rules?.[0]?.comment === undefined && (rules?.length ?? 0) > 1
        })
      let actual = await dp.read({ elements: true })
      // Each mode from the one before: the hooks move first, last, first, and exclusive
      // deletes the foreign rules standing before them.
      const steps: [CoexistenceMode, boolean][] = [
        ['coexistence_primary', false],
        ['coexistence_non_primary', true],
        ['exclusive', false],
        ['coexistence_non_primary', false],
        ['coexistence_primary', false],
      ]
      for (const [mode, foreignStandsFirst] of steps) {
        const d = desiredIn(mode)
        const before = { saves: saves(), commits: committed().length }
        await dp.apply(d, actual, { modeChanged: true })
        // Both commits went to the tool shell, and nothing was listed back.
        expect(committed().slice(before.commits)).toEqual([
          'iptables-nft-restore',
          'ip6tables-nft-restore',
        ])
        expect(ran).toEqual([])
        expect(saves()).toBe(before.saves)
        actual = await dp.read({ elements: true, unlessChanged: true })
        const kernel = await readOwn(ns.run, backend)
        expect(planApply(d, diff(d, kernel))).toEqual({ kind: 'none' })
        expect(asDiffed(actual)).toEqual(asDiffed(kernel))
        expect(foreignFirst(kernel)).toEqual([foreignStandsFirst, foreignStandsFirst])
      }
    } finally {
      stop()
    }
  })

  it('lists back a commit the monitor did not report, and finds it missing', async () => {
    // The IPv4 commit "succeeds" as a process that commits nothing.
    const { dp, saves, stop } = await watched({
      shell: false,
      wrap: (run) => (cmd, args, opts) =>
        cmd === 'iptables-nft-restore' ? run('true', [], opts) : run(cmd, args, opts),
    })
    try {
      const d = desiredIn('coexistence_primary')
      const actual = await dp.read({ elements: true })
      const before = saves()
      await dp.apply(d, actual, { modeChanged: true })
      expect(saves()).toBe(before + 1)
      const after = await dp.read({ elements: true })
      const drifts = diff(d, after)
      expect(drifts.some((x) => 'table' in x && x.table === 'ip filter')).toBe(true)
      expect(drifts.some((x) => 'table' in x && x.table === 'ip6 filter')).toBe(false)
      expect(asDiffed(after)).toEqual(asDiffed(await readOwn(ns.run, backend)))
    } finally {
      stop()
    }
  })

  it('finds another process change made right after the commit, at the next read', async () => {
    const d = desiredIn('coexistence_primary')
    let flushed = false
    // The IPv6 commit done, another process flushes our IPv4 input chain before the apply ends.
    const { dp, stop } = await watched({
      shell: false,
      wrap: (run) => async (cmd, args, opts) => {
        const r = await run(cmd, args, opts)
        if (cmd === 'ip6tables-nft-restore' && !flushed) {
          flushed = true
          await run('iptables-nft', ['-w', '-F', 'PALISADE-INPUT'])
        }
        return r
      },
    })
    try {
      await dp.apply(d, await dp.read({ elements: true }), { modeChanged: true })
      expect(flushed).toBe(true)
      const after = await dp.read({ elements: true, unlessChanged: true })
      expect(diff(d, after)).toContainEqual(
        expect.objectContaining({
          kind: 'rule_removed',
          table: 'ip filter',
          chain: 'PALISADE-INPUT',
        }),
      )
    } finally {
      stop()
    }
  })
})
