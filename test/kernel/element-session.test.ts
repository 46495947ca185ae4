/**
 * A change to set elements goes to a tool kept running for it (`nft -i`, `ipset -`): it must
 * leave the kernel exactly as a full apply of the same desired state does, be recognised as our
 * own change by the change monitor, and survive the tool being killed (the change is made by a
 * tool run once, the next by a session started again). Closing the dataplane ends the tool.
 */
import type { MonitorEvent, ProcessStarter, StartedProcess } from '@palisade/agent'
import { applyDesired, KernelDataplane, readOwn, startLocal, systemClock } from '@palisade/agent'
import type { Backend, Desired, NamedSet, Ruleset } from '@palisade/firewall'
import { BACKENDS, compile, diff } from '@palisade/firewall'
import { Lab } from '@palisade/lab'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { policyWithPeers } from '../../bench/peers.js'
import { SAMPLE_FAILSAFE } from '../../packages/firewall/src/host-policy.fixture.js'

const desiredWith = (backend: Backend, extra: string[], version: number): Desired =>
  compile(
    { ...policyWithPeers(300, 'coexistence_primary', extra), version },
    { backend, failsafe: SAMPLE_FAILSAFE },
  )

/** Our objects with each set's elements in one order (the kernel lists a hash in its own). */
const sorted = (rs: Ruleset): Ruleset => {
  const set = (s: NamedSet): NamedSet => ({ ...s, elements: [...s.elements].sort() })
  return {
    ...rs,
    tables: rs.tables.map((t) => ({ ...t, sets: t.sets.map(set) })),
    ipsets: rs.ipsets.map(set),
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('set element changes through a tool session', () => {
  for (const backend of BACKENDS) {
    describe(backend, () => {
      let ns: Awaited<ReturnType<typeof Lab.isolated>>
      let full: Awaited<ReturnType<typeof Lab.isolated>>
      beforeAll(async () => {
        ns = await Lab.isolated()
        full = await Lab.isolated()
      })
      afterAll(async () => {
        await ns.destroy()
        await full.destroy()
      })

      /** The kernel a full apply of `d` makes, from nothing, in a namespace of its own. */
      async function fullyApplied(d: Desired): Promise<Ruleset> {
        const empty = { ...d, tables: [], hooks: [], ipsets: [] }
        await applyDesired(full.run, empty, await readOwn(full.run, backend), { modeChanged: true })
        await applyDesired(full.run, d, await readOwn(full.run, backend), { modeChanged: true })
        return sorted(await readOwn(full.run, backend))
      }

      it('leaves the kernel as a full apply does, and survives the tool killed', async () => {
        const started: { cmd: string; proc: StartedProcess }[] = []
        const start: ProcessStarter = (cmd, args, on) => {
          const proc = startLocal('ip', ['netns', 'exec', ns.ns, cmd, ...args], on)
          // (perl: iptables-legacy's filter tables digest, its script in its arguments)
          const name = cmd === 'perl' ? 'perl -e DIGEST' : `${cmd} ${args.join(' ')}`
          if (args[0] !== 'monitor') started.push({ cmd: name, proc })
          return proc
        }
        const dp = new KernelDataplane(ns.run, backend, start, systemClock)
        // nf_tables reports element changes (ipsets send no events): each change's batch must
        // be taken for our own. Judged once the change is made (a tool run once is known by
        // its pid when it ended), while the session that made it still runs.
        const seen: MonitorEvent[] = []
        let arrived: () => void = () => undefined
        const watch =
          backend === 'nftables'
            ? dp.watch((e) => {
                seen.push(e)
                arrived()
              })
            : undefined
        const elementBatch = async () => {
          const has = () =>
            seen.some((e) => e.kind === 'change' && e.batch.text.includes('element'))
          while (backend === 'nftables' && !has()) await new Promise<void>((r) => (arrived = r))
          const foreign = seen.filter((e) => e.kind !== 'change' || !dp.isOwn(e.batch))
          seen.length = 0
          return foreign
        }
        try {
          const base = desiredWith(backend, [], 1)
          // (and, on iptables, the shell the listings go to; on iptables-legacy, the digest)
          const sessions =
            backend === 'nftables'
              ? ['sh -c exec stdbuf -oL nft -t -j -i 2>&1']
              : [
                  'sh -c exec stdbuf -oL ipset - 2>&1',
                  'sh -s',
                  ...(backend === 'iptables-legacy' ? ['perl -e DIGEST'] : []),
                ]
          await dp.apply(base, await dp.read({ elements: true }), { modeChanged: true })
          // Started by the read (warm), ahead of the element change an apply may make next.
          expect(started.map((s) => s.cmd)).toEqual(sessions)
          seen.length = 0
          /** The enforcer's way: from what is known, apply, then the read that verifies. */
          const change = async (d: Desired) => {
            const actual = await dp.read({ elements: true, unlessChanged: true })
            const plan = await dp.apply(d, actual, { modeChanged: false })
            expect(plan.kind).toBe('sets')
            expect(diff(d, await dp.read({ elements: true }))).toEqual([])
            const kernel = sorted(await readOwn(ns.run, backend))
            expect(kernel).toEqual(await fullyApplied(d))
            // The session's own changes are never taken for another process's.
            expect(await elementBatch()).toEqual([])
          }
          const more = ['203.0.113.7/32', '203.0.113.9/32']
          await change(desiredWith(backend, more, 2))
          expect(started.map((s) => s.cmd)).toEqual(sessions)
          const first = started[0]?.proc.pid ?? -1
          expect(alive(first)).toBe(true)

          // Killed between changes: the next change is still made (by a tool run once, or a
          // session started again), and the one after by a new session.
          process.kill(first, 'SIGKILL')
          await change(desiredWith(backend, more.slice(1), 3))
          await change(desiredWith(backend, [], 4))
          expect(started.length).toBeGreaterThanOrEqual(2)
          expect(started.at(-1)?.proc.pid).not.toBe(first)
        } finally {
          watch?.stop()
          dp.close()
        }
        // Closed: no tool of ours is left running.
        for (const s of started) {
          const pid = s.proc.pid ?? -1
          for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20))
          expect(alive(pid)).toBe(false)
        }
      })
    })
  }
})
