/**
 * The read-back after an apply reads only what the apply changed (and cheap headers), not
 * everything: these prove it still finds a kernel that does not hold what the apply wrote,
 * whether the tool claimed success without doing it or another process changed our objects
 * right after. Each would pass if applyDesired trusted its commands instead of reading back.
 */
import type { Runner } from '@palisade/agent'
import { applyDesired, readOwn } from '@palisade/agent'
import type { Backend, Desired, Drift } from '@palisade/firewall'
import { BACKENDS, compile, diff, planApply } from '@palisade/firewall'
import { Lab } from '@palisade/lab'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { policyWithPeers } from '../../bench/peers.js'
import { SAMPLE_FAILSAFE } from '../../packages/firewall/src/host-policy.fixture.js'

const isApply = (cmd: string, args: readonly string[]) =>
  (cmd === 'nft' && args[0] === '-f') ||
  (cmd === 'ipset' && args[0] === 'restore') ||
  cmd.endsWith('-restore')

/** A runner whose apply commands report success without running. */
const swallowing =
  (run: Runner): Runner =>
  async (cmd, args, opts) =>
    isApply(cmd, args) ? { code: 0, stdout: '', stderr: '' } : run(cmd, args, opts)

/** A runner after whose every apply command `then` runs: another process at work. */
const followedBy =
  (run: Runner, then: (cmd: string) => Promise<void>): Runner =>
  async (cmd, args, opts) => {
    const r = await run(cmd, args, opts)
    if (r.code === 0 && isApply(cmd, args)) await then(cmd)
    return r
  }

const desiredWith = (backend: Backend, peers: number, extra: string[] = []): Desired =>
  compile(policyWithPeers(peers, 'coexistence_primary', extra), {
    backend,
    failsafe: SAMPLE_FAILSAFE,
  })

/** What diffing the verified state finds, as the enforcer sees it. */
function driftsAfter(d: Desired, after: Parameters<typeof diff>[1]): Drift[] {
  const drifts = diff(d, after)
  expect(planApply(d, drifts).kind).not.toBe('none')
  return drifts
}

describe('the read-back after an apply finds a kernel that differs', () => {
  for (const backend of BACKENDS) {
    describe(backend, () => {
      // A namespace each: ipsets one backend's rules use cannot go with another's reset.
      let ns: Awaited<ReturnType<typeof Lab.isolated>>
      beforeAll(async () => {
        ns = await Lab.isolated()
      })
      afterAll(() => ns.destroy())
      const d = desiredWith(backend, 300)
      const peerSet = (d.backend === 'nftables' ? (d.tables[0]?.sets ?? []) : d.ipsets)[0]
      const reset = async () => {
        const empty = { ...d, tables: [], hooks: [], ipsets: [] }
        await applyDesired(ns.run, empty, await readOwn(ns.run, backend), { modeChanged: true })
      }

      it('a full apply the tools claimed but never made', async () => {
        await reset()
        const { plan, after } = await applyDesired(
          swallowing(ns.run),
          d,
          await readOwn(ns.run, backend),
          { modeChanged: true },
        )
        expect(plan.kind).toBe('full')
        const kinds = new Set(driftsAfter(d, after).map((x) => x.kind))
        expect(kinds).toContain(backend === 'nftables' ? 'table_missing' : 'hook_missing')
      })

      it('a chain of ours deleted right after the full apply', async () => {
        await reset()
        const chain = backend === 'nftables' ? 'forward' : 'PALISADE-FORWARD'
        const deleteChain = async (cmd: string) => {
          if (backend === 'nftables')
            await ns.run('nft', ['delete', 'chain', 'inet', 'palisade', chain])
          else if (cmd.startsWith('iptables-')) {
            const tool = `iptables-${backend === 'iptables-legacy' ? 'legacy' : 'nft'}`
            await ns.run(tool, [
              '-D',
              'FORWARD',
              '-j',
              chain,
              '-m',
              'comment',
              '--comment',
              hookComment(d),
            ])
            await ns.run(tool, ['-F', chain])
            await ns.run(tool, ['-X', chain])
          }
        }
        const { after } = await applyDesired(
          followedBy(ns.run, deleteChain),
          d,
          await readOwn(ns.run, backend),
          { modeChanged: true },
        )
        const drifts = driftsAfter(d, after)
        expect(drifts).toContainEqual(expect.objectContaining({ kind: 'chain_missing', chain }))
      })

      // nftables: one transaction, acknowledged whole; its elements are not listed again (a
      // second at 100,000), and another process's change to them is the change monitor's to
      // report. ipset commits line by line: its entry counts are read back.
      if (backend !== 'nftables')
        it('a peer removed from our set right after the full apply', async () => {
          await reset()
          const victim = peerSet?.elements[7] ?? ''
          const { after } = await applyDesired(
            followedBy(ns.run, () => ipsetDel(ns.run, peerSet?.name ?? '', victim)),
            d,
            await readOwn(ns.run, backend),
            { modeChanged: true },
          )
          expect(driftsAfter(d, after)).toContainEqual(
            expect.objectContaining({
              kind: 'set_elements',
              set: peerSet?.name,
              removed: [victim],
            }),
          )
        })

      if (backend !== 'nftables') {
        const tool = (family: 'ip' | 'ip6') =>
          `${family === 'ip' ? 'iptables' : 'ip6tables'}-${backend === 'iptables-legacy' ? 'legacy' : 'nft'}`
        const flush = (family: 'ip' | 'ip6', chain = 'PALISADE-INPUT') =>
          ns.run(tool(family), ['-F', chain])
        const verified = async () =>
          (await applyDesired(ns.run, d, await readOwn(ns.run, backend), { modeChanged: true }))
            .after
        /** `run`, and the listings it ran. */
        const recorded = (run: Runner) => {
          const listed: string[] = []
          const recording: Runner = (cmd, args, opts) => {
            if (cmd.endsWith('-save')) listed.push(cmd)
            return run(cmd, args, opts)
          }
          return { listed, recording }
        }

        it('a rules repair of one family, that family changed again right after', async () => {
          await reset()
          await verified()
          await flush('ip6')
          const { listed, recording } = recorded(
            followedBy(ns.run, () => flush('ip6', 'PALISADE-OUTPUT').then(() => undefined)),
          )
          const { plan, after } = await applyDesired(
            recording,
            d,
            await readOwn(ns.run, backend, { elements: false }),
            { modeChanged: false },
          )
          // The repair committed the IPv6 table alone, and its read-back found what changed after.
          expect(plan).toEqual({
            kind: 'rules',
            chains: ['PALISADE-INPUT'],
            tables: ['ip6 filter'],
          })
          const drifts = driftsAfter(d, after)
          expect(drifts).toContainEqual(
            expect.objectContaining({
              kind: 'rule_removed',
              table: 'ip6 filter',
              chain: 'PALISADE-OUTPUT',
            }),
          )
          expect(drifts.every((x) => 'table' in x && x.table === 'ip6 filter')).toBe(true)
          // iptables-nft reads back the family it wrote (the change monitor reports the other's
          // changes); iptables-legacy, which sends no event, both.
          expect(listed).toEqual(
            backend === 'iptables-nft'
              ? ['ip6tables-nft-save']
              : ['iptables-legacy-save', 'ip6tables-legacy-save'],
          )
        })

        // iptables-legacy sends no change event: a change to the other family during the repair
        // must show in its read-back (on iptables-nft the change monitor reports it instead).
        if (backend === 'iptables-legacy')
          it('a rules repair of one family, the other family flushed during it', async () => {
            await reset()
            await verified()
            await flush('ip')
            const { plan, after } = await applyDesired(
              followedBy(ns.run, () => flush('ip6').then(() => undefined)),
              d,
              await readOwn(ns.run, backend, { elements: false }),
              { modeChanged: false },
            )
            expect(plan).toEqual({
              kind: 'rules',
              chains: ['PALISADE-INPUT'],
              tables: ['ip filter'],
            })
            const drifts = driftsAfter(d, after)
            expect(drifts).toContainEqual(
              expect.objectContaining({ kind: 'rule_removed', table: 'ip6 filter' }),
            )
            expect(drifts.some((x) => 'table' in x && x.table === 'ip filter')).toBe(false)
          })
      }

      if (backend !== 'nftables')
        it('a one-address change ipset claimed but never made', async () => {
          await reset()
          const { after: verified } = await applyDesired(
            ns.run,
            d,
            await readOwn(ns.run, backend),
            {
              modeChanged: true,
            },
          )
          const changed = desiredWith(backend, 300, ['198.19.255.1/32'])
          const { plan, after } = await applyDesired(swallowing(ns.run), changed, verified, {
            modeChanged: false,
          })
          expect(plan.kind).toBe('sets')
          expect(driftsAfter(changed, after)).toContainEqual(
            expect.objectContaining({ kind: 'set_elements', removed: ['198.19.255.1/32'] }),
          )
        })
    })
  }
})

/** The comment of our FORWARD hook, to delete exactly it. */
function hookComment(d: Desired): string {
  return d.hooks.find((h) => h.family === 'ip' && h.chain === 'FORWARD')?.rule.comment ?? ''
}

async function ipsetDel(run: Runner, set: string, cidr: string): Promise<void> {
  await run('ipset', ['del', set, cidr])
}
