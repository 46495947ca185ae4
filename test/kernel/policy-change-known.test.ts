/**
 * A new desired state is applied from what the kernel dataplane last verified, without reading
 * the kernel again (`read` with `unlessChanged`): a one-address change then costs its one apply,
 * made by the tool session kept for element changes. These prove that it runs nothing else, and that a change another process made to our
 * objects before it is still found: a change event makes the read read (nf_tables), the apply's
 * entry counts find a peer gone from an ipset, and the next look finds iptables-legacy rules
 * changed. Each would fail if the dataplane trusted what it knew without these.
 */
import type { MonitorEvent, ProcessStarter, Runner } from '@palisade/agent'
import { applyDesired, KernelDataplane, readOwn, startLocal, systemClock } from '@palisade/agent'
import type { Backend, Desired, Drift, Ruleset } from '@palisade/firewall'
import { BACKENDS, compile, diff } from '@palisade/firewall'
import { Lab } from '@palisade/lab'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { policyWithPeers } from '../../bench/peers.js'
import { SAMPLE_FAILSAFE } from '../../packages/firewall/src/host-policy.fixture.js'
import { asDiffed } from '../../packages/firewall/src/live.fixture.js'

const desiredWith = (backend: Backend, extra: string[] = []): Desired =>
  compile(policyWithPeers(300, 'coexistence_primary', extra), {
    backend,
    failsafe: SAMPLE_FAILSAFE,
  })
const ONE_MORE = ['203.0.113.7/32']

describe('a policy change from what the dataplane verified', () => {
  for (const backend of BACKENDS) {
    describe(backend, () => {
      let ns: Awaited<ReturnType<typeof Lab.isolated>>
      beforeAll(async () => {
        ns = await Lab.isolated()
      })
      afterAll(() => ns.destroy())
      const d = desiredWith(backend)
      const added = desiredWith(backend, ONE_MORE)
      const peerSet = (d.backend === 'nftables' ? (d.tables[0]?.sets ?? []) : d.ipsets)[0]
      const victim = peerSet?.elements[7] ?? ''
      const events = backend !== 'iptables-legacy'

      /**
       * A dataplane that applied and verified `d` from an empty kernel, with the change monitor
       * where the agent runs one (seen working: its own apply's event came), and the commands
       * it runs from then on. With `digest: false`, perl cannot be started (iptables-legacy's
       * looks then list the filter tables).
       */
      async function verifiedDataplane(
        o: {
          digest?: boolean
          fullLookEvery?: number
          /** Runs before each tool the dataplane starts or has the tool shell commit with, by name. */
          before?: (cmd: string) => Promise<void>
          /** While it holds a promise, requests to the tool shell wait for it. */
          gate?: { hold?: Promise<void> }
        } = {},
      ) {
        const empty = { ...d, tables: [], hooks: [], ipsets: [] }
        const before = await readOwn(ns.run, backend)
        await applyDesired(ns.run, empty, before, { modeChanged: true })
        const commands: string[] = []
        const run: Runner = async (cmd, args, opts) => {
          commands.push(`${cmd} ${args[0] ?? ''}`)
          await o.before?.(cmd)
          return ns.run(cmd, args, opts)
        }
        /** The tools it started besides the monitor: the session its element changes go to. */
        const sessions: string[] = []
        /** The requests written to the shell kept for listings. */
        const listingRequests: string[] = []
        const start: ProcessStarter = (cmd, args, on) => {
          if (args[0] !== 'monitor')
            sessions.push(cmd === 'perl' ? 'perl -e DIGEST' : `${cmd} ${args.join(' ')}`)
          if (cmd === 'perl' && o.digest === false) return startLocal('/nonexistent/perl', [], on)
          const p = startLocal('ip', ['netns', 'exec', ns.ns, cmd, ...args], on)
          if (`${cmd} ${args.join(' ')}` !== 'sh -s') return p
          return {
            ...p,
            write: (text) => {
              listingRequests.push(text)
              const commit = /^'([\w-]+)' .* <'/m.exec(text)?.[1]
              const ran = commit === undefined ? undefined : o.before?.(commit)
              const hold = o.gate?.hold
              if (hold || ran)
                void Promise.all([hold, ran].map((h) => h ?? Promise.resolve())).then(() =>
                  p.write(text),
                )
              else p.write(text)
            },
          }
        }
        const dp = new KernelDataplane(run, backend, start, systemClock, o)
        const seen: MonitorEvent[] = []
        let waiting: { f: (e: MonitorEvent) => boolean; done: () => void } | undefined
        const watch = events
          ? dp.watch((e) => {
              seen.push(e)
              if (waiting?.f(e)) waiting.done()
            })
          : undefined
        /** Resolves once the monitor reported an event `f` accepts (at once if it did). */
        const eventMatching = (f: (e: MonitorEvent) => boolean) =>
          new Promise<void>((done) => {
            if (seen.some(f)) done()
            else waiting = { f, done }
          })
        const own = (e: MonitorEvent) => e.kind === 'change' && dp.isOwn(e.batch)
        await dp.apply(d, await dp.read({ elements: true }), { modeChanged: true })
        if (events) await eventMatching(own)
        expect(diff(d, await dp.read({ elements: true }))).toEqual([])
        commands.length = 0
        seen.length = 0
        const foreignEvent = () => eventMatching((e) => e.kind === 'change' && !own(e))
        const stop = () => {
          watch?.stop()
          dp.close()
        }
        /** Forgets the events seen so far: foreignEvent then waits for one to come. */
        const forget = () => void (seen.length = 0)
        return { dp, commands, sessions, listingRequests, stop, foreignEvent, forget }
      }

      /** The one-address change as the enforcer makes it: read unless changed, apply, read. */
      async function oneMore(dp: KernelDataplane) {
        const actual = await dp.read({ elements: true, unlessChanged: true })
        const plan = await dp.apply(added, actual, { modeChanged: false })
        const after = await dp.read({ elements: true })
        return { actual, plan, after }
      }

      const found = (drifts: Drift[], f: (d: Drift) => boolean) => drifts.some(f)
      const lacksVictim = (d: Drift) => d.kind === 'set_elements' && d.removed.includes(victim)

      it('runs its apply in the tool session and nothing else, and the kernel holds it', async () => {
        const { dp, commands, sessions, stop } = await verifiedDataplane()
        try {
          const { plan, after } = await oneMore(dp)
          expect(plan.kind).toBe('sets')
          // The change went to the tool kept running for element changes; no tool was started.
          expect(commands).toEqual([])
          // (and, on iptables, the shell kept running for listings: see the next test)
          expect(sessions).toEqual(
            backend === 'nftables'
              ? ['sh -c exec stdbuf -oL nft -t -j -i 2>&1']
              : [
                  'sh -c exec stdbuf -oL ipset - 2>&1',
                  'sh -s',
                  ...(backend === 'iptables-legacy' ? ['perl -e DIGEST'] : []),
                ],
          )
          expect(diff(added, after)).toEqual([])
          expect(diff(added, await readOwn(ns.run, backend))).toEqual([])
          // The signal it kept after the apply (from the apply's own listing) is what a look
          // takes now: its own change does not make the next poll read everything.
          if (backend !== 'nftables')
            expect(await dp.changed()).toEqual({ rules: false, elements: false })
        } finally {
          stop()
        }
      })

      if (backend !== 'nftables')
        it('takes no look for a change that listed after an apply it began before', async () => {
          const gate: { hold?: Promise<void> } = {}
          const { dp, listingRequests, stop } = await verifiedDataplane({ gate })
          try {
            let release = () => undefined as void
            gate.hold = new Promise<void>((r) => (release = r))
            const asked = listingRequests.length
            const look = dp.changed()
            const { plan } = await oneMore(dp)
            expect(plan.kind).toBe('sets')
            // The look had asked for the sets' headers before the apply, and is answered after
            // it: compared with the signal before the apply, its count would be a change, and
            // the poll a read of every element.
            expect(listingRequests.slice(asked).join('')).toMatch(/'ipset' 'list' '-t'/)
            release()
            expect(await look).toEqual({ rules: false, elements: false })
            delete gate.hold
            expect(await dp.changed()).toEqual({ rules: false, elements: false })
          } finally {
            stop()
          }
        })

      if (backend !== 'nftables')
        it('reads and looks through the tool shell, starting no tool, as the tools list', async () => {
          const { dp, commands, stop } = await verifiedDataplane()
          try {
            const [whole, terse] = [
              await dp.read({ elements: true }),
              await dp.read({ elements: false }),
            ]
            expect(await dp.changed()).toEqual({ rules: false, elements: false })
            expect(commands).toEqual([])
            expect(whole).toEqual(await readOwn(ns.run, backend))
            expect(terse).toEqual(await readOwn(ns.run, backend, { elements: false }))
            // What another process changes shows in the shell's listings as in the tools'.
            await ns.run('ipset', ['del', peerSet?.name ?? '', victim])
            await ns.run(backend === 'iptables-legacy' ? 'iptables-legacy' : 'iptables-nft', [
              '-w',
              '-F',
              'PALISADE-INPUT',
            ])
            expect(await dp.changed()).toEqual({
              rules: backend === 'iptables-legacy',
              elements: true,
            })
            const after = await dp.read({ elements: true })
            expect(found(diff(d, after), lacksVictim)).toBe(true)
            expect(found(diff(d, after), (x) => x.kind === 'rule_removed')).toBe(true)
            expect(after).toEqual(await readOwn(ns.run, backend))
            expect(commands).toEqual([])
          } finally {
            stop()
          }
        })

      if (backend === 'iptables-legacy')
        it('looks at the filter tables through their digest, listing nothing but the sets at times', async () => {
          const { dp, commands, listingRequests, sessions, stop } = await verifiedDataplane({
            fullLookEvery: 4,
          })
          try {
            const listed = listingRequests.length
            const looks = []
            for (let i = 0; i < 8; i++) looks.push(await dp.changed())
            expect(looks).toEqual(Array(8).fill({ rules: false, elements: false }))
            // Two of the eight took the sets' headers; the filter tables were never listed.
            const asked = listingRequests.slice(listed).join('')
            expect(asked.match(/'ipset' 'list' '-t'/g)).toHaveLength(2)
            expect(asked).not.toMatch(/legacy-save/)
            // Traffic through our rules (connections refused) changes their counters, which the
            // digest leaves out.
            await ns.run('ip', ['link', 'set', 'lo', 'up'])
            for (const to of ['127.0.0.1', '::1'])
              await ns.run('bash', ['-c', `for i in 1 2 3; do : </dev/tcp/${to}/9; done`])
            for (const save of ['iptables-legacy-save', 'ip6tables-legacy-save']) {
              const counted = await ns.run(save, ['-c', '-t', 'filter'])
              expect(counted.stdout).toMatch(/^\[[1-9]\d*:\d+\] -A INPUT /m)
            }
            expect(await dp.changed()).toEqual({ rules: false, elements: false })
            // A change another process made shows at the next look, full or not: in each
            // family, a rule added, then that rule replaced by one of the same size.
            const rules = async (tool: string, a: string, b: string) => {
              await ns.run(tool, ['-w', '-I', 'PALISADE-INPUT', '1', '-s', a, '-j', 'ACCEPT'])
              expect(await dp.changed()).toEqual({ rules: true, elements: false })
              const read = await dp.read({ elements: false })
              expect(read).toEqual(await readOwn(ns.run, backend, { elements: false }))
              expect(diff(d, read)).not.toEqual([])
              expect(await dp.changed()).toEqual({ rules: false, elements: false })
              await ns.run(tool, ['-w', '-R', 'PALISADE-INPUT', '1', '-s', b, '-j', 'ACCEPT'])
              expect(await dp.changed()).toEqual({ rules: true, elements: false })
              await dp.read({ elements: false })
              expect(await dp.changed()).toEqual({ rules: false, elements: false })
            }
            await rules('iptables-legacy', '198.18.0.1', '198.18.0.2')
            await rules('ip6tables-legacy', '2001:db8::1', '2001:db8::2')
            expect(commands).toEqual([])
            expect(sessions.filter((x) => x === 'perl -e DIGEST')).toHaveLength(1)
          } finally {
            stop()
          }
        })

      if (backend === 'iptables-legacy')
        it('takes a look that lists only every so many times where no digest runs', async () => {
          const { dp, listingRequests, stop } = await verifiedDataplane({
            digest: false,
            fullLookEvery: 3,
          })
          try {
            await ns.run('iptables-legacy', ['-w', '-F', 'PALISADE-INPUT'])
            const listed = listingRequests.length
            expect([await dp.changed(), await dp.changed()]).toEqual([
              { rules: false, elements: false },
              { rules: false, elements: false },
            ])
            expect(listingRequests).toHaveLength(listed)
            expect(await dp.changed()).toEqual({ rules: true, elements: false })
            expect(listingRequests.slice(listed).join('')).toMatch(/legacy-save/)
          } finally {
            stop()
          }
        })

      if (backend === 'iptables-legacy')
        it('reads from the listings of the look that found our rules changed, where no digest runs', async () => {
          const { dp, commands, listingRequests, stop } = await verifiedDataplane({ digest: false })
          try {
            await ns.run('iptables-legacy', ['-w', '-F', 'PALISADE-INPUT'])
            expect(await dp.changed()).toEqual({ rules: true, elements: false })
            const looks = listingRequests.length
            const read = await dp.read({ elements: false })
            expect(listingRequests).toHaveLength(looks)
            expect(commands).toEqual([])
            expect(read).toEqual(await readOwn(ns.run, backend, { elements: false }))
            expect(found(diff(d, read), (x) => x.kind === 'rule_removed')).toBe(true)
            // Its signal is the look's: nothing changed since, and a change after it shows.
            expect(await dp.changed()).toEqual({ rules: false, elements: false })
            await ns.run('ip6tables-legacy', ['-w', '-F', 'PALISADE-OUTPUT'])
            expect(await dp.changed()).toEqual({ rules: true, elements: false })
            // A read with set contents, or one after a read or an apply began, lists again.
            await dp.read({ elements: true })
            expect(listingRequests.length).toBeGreaterThan(looks + 2)
            await ns.run('iptables-legacy', ['-w', '-F', 'PALISADE-OUTPUT'])
            expect(await dp.changed()).toEqual({ rules: true, elements: false })
            // A look, and a read begun before the look has listed: the read tells, not the
            // look, which may have listed before it and no longer has the last read to compare.
            const [changed, read2] = await Promise.all([dp.changed(), dp.read({ elements: true })])
            expect(changed).toEqual({ rules: false, elements: false })
            expect(found(diff(d, read2), (x) => x.kind === 'rule_removed')).toBe(true)
            const after = listingRequests.length
            await dp.read({ elements: false })
            expect(listingRequests.length).toBeGreaterThan(after)
          } finally {
            stop()
          }
        })

      if (backend === 'iptables-nft')
        it('lists only the filter table another process changed, where its event says so', async () => {
          const { dp, commands, listingRequests, stop, foreignEvent, forget } =
            await verifiedDataplane()
          /** The read without set contents after another process's change, and what it listed. */
          const readAfter = async (change: () => Promise<unknown>) => {
            forget()
            await change()
            await foreignEvent()
            const asked = listingRequests.length
            const read = await dp.read({ elements: false })
            const listed = listingRequests.slice(asked).join('')
            expect(asDiffed(read)).toEqual(
              asDiffed(await readOwn(ns.run, backend, { elements: false })),
            )
            return {
              read,
              listed: ['iptables', 'ip6tables', 'ipset'].filter((t) =>
                listed.includes(`'${t === 'ipset' ? 'ipset' : `${t}-nft-save`}'`),
              ),
            }
          }
          /** Repaired, as the agent does: what the apply read back is known again. */
          const repair = async (read: Ruleset) => {
            await dp.apply(d, read, { modeChanged: false })
            expect(diff(d, await dp.read({ elements: false }))).toEqual([])
          }
          const flush = (tool: string) => () => ns.run(tool, ['-w', '-F', 'PALISADE-INPUT'])
          const removed = (rs: Ruleset) => found(diff(d, rs), (x) => x.kind === 'rule_removed')
          const setUp = listingRequests.length
          try {
            const v4 = await readAfter(flush('iptables-nft'))
            expect(v4.listed).toEqual(['iptables', 'ipset'])
            expect(removed(v4.read)).toBe(true)
            // Then the other family alone; what the last read found stands for the rest.
            const v6 = await readAfter(flush('ip6tables-nft'))
            expect(v6.listed).toEqual(['ip6tables', 'ipset'])
            expect(removed(v6.read)).toBe(true)
            await repair(v6.read)
            const again = await readAfter(flush('ip6tables-nft'))
            expect(again.listed).toEqual(['ip6tables', 'ipset'])
            await repair(again.read)
            // A change to anything else reads all of it.
            const nat = await readAfter(() =>
              ns.run('iptables-nft', ['-w', '-t', 'nat', '-N', 'OTHER']),
            )
            expect(nat.listed).toEqual(['iptables', 'ip6tables', 'ipset'])
            expect(diff(d, nat.read)).toEqual([])
            // Every listing and every repair's commit went to the tool shell: no tool was started.
            expect(commands).toEqual([])
            const commits = (tool: string) =>
              listingRequests.slice(setUp).filter((r) => r.includes(`\n'${tool}' `))
            expect(commits('iptables-nft-restore')).toHaveLength(1)
            expect(commits('ip6tables-nft-restore')).toHaveLength(2)
          } finally {
            stop()
          }
        })

      if (backend === 'iptables-nft')
        it('does not take a change another process made during our apply from what it read back', async () => {
          let during: (() => Promise<void>) | undefined
          const { dp, stop, foreignEvent, forget } = await verifiedDataplane({
            before: async (cmd) => {
              const f = during
              if (cmd !== 'iptables-nft-restore' || !f) return
              during = undefined
              await f()
            },
          })
          try {
            await ns.run('iptables-nft', ['-w', '-F', 'PALISADE-INPUT'])
            await foreignEvent()
            const read = await dp.read({ elements: false })
            // The repair commits IPv4 alone and reads back IPv4 alone; meanwhile another
            // process flushes an IPv6 chain, and its event comes before the repair's tool runs.
            during = async () => {
              forget()
              await ns.run('ip6tables-nft', ['-w', '-F', 'PALISADE-OUTPUT'])
              await foreignEvent()
            }
            const plan = await dp.apply(d, read, { modeChanged: false })
            expect(plan).toMatchObject({ kind: 'rules', tables: ['ip filter'] })
            expect(during).toBeUndefined()
            // The read after it, and the one after a change to IPv4 alone, find the IPv6 flush.
            const kernel = () => readOwn(ns.run, backend, { elements: false })
            expect(asDiffed(await dp.read({ elements: false }))).toEqual(asDiffed(await kernel()))
            forget()
            await ns.run('iptables-nft', ['-w', '-F', 'PALISADE-OUTPUT'])
            await foreignEvent()
            const after = await dp.read({ elements: false })
            expect(asDiffed(after)).toEqual(asDiffed(await kernel()))
            expect(found(diff(d, after), (x) => x.kind === 'rule_removed')).toBe(true)
          } finally {
            stop()
          }
        })

      it('still finds a peer another process deleted from our set before it', async () => {
        const { dp, stop, foreignEvent } = await verifiedDataplane()
        try {
          if (backend === 'nftables')
            await ns.run('nft', [
              'delete',
              'element',
              'inet',
              'palisade',
              peerSet?.name ?? '',
              `{ ${victim.replace(/\/32$/, '')} }`,
            ])
          else await ns.run('ipset', ['del', peerSet?.name ?? '', victim])
          if (backend === 'nftables') await foreignEvent()
          const { actual, after } = await oneMore(dp)
          // In what the read found (it read, after the event) or in the apply's read-back.
          const drifts = [...diff(added, actual), ...diff(added, after)]
          expect(found(drifts, lacksVictim)).toBe(true)
        } finally {
          stop()
        }
      })

      it('still finds our input chain flushed by another process before it', async () => {
        const { dp, stop, foreignEvent } = await verifiedDataplane()
        try {
          if (backend === 'nftables')
            await ns.run('nft', ['flush', 'chain', 'inet', 'palisade', 'input'])
          else
            await ns.run(backend === 'iptables-legacy' ? 'iptables-legacy' : 'iptables-nft', [
              '-w',
              '-F',
              'PALISADE-INPUT',
            ])
          if (events) await foreignEvent()
          const { actual } = await oneMore(dp)
          const inRead = found(diff(added, actual), (x) => x.kind === 'rule_removed')
          if (events) expect(inRead).toBe(true)
          // Nothing reports it: the read trusted what it knew, and the next look (the agent
          // polls) sees the rules changed since the last read.
          else expect(await dp.changed()).toEqual({ rules: true, elements: false })
        } finally {
          stop()
        }
      })
    })
  }
})
