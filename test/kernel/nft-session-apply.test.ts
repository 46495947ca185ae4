/**
 * On nftables every apply, the read-back that verifies it, and a read without set contents go to
 * the `nft -i` the agent keeps running, the script in a file the session names (`include`): a
 * full apply and a rules repair start no tool, and leave the kernel exactly as `nft -f -` of the
 * same state does. The include is one transaction, as `nft -f` is: a script the kernel refuses
 * at its last line changes nothing, and the error is word for word what `nft -f -` says. After a
 * script of over 1 MB, whose memory nft keeps, the session's nft is ended and another started.
 */
import { readFileSync } from 'node:fs'
import type { ProcessStarter, Runner } from '@palisade/agent'
import { applyDesired, KernelDataplane, readOwn, startLocal, systemClock } from '@palisade/agent'
import type { Desired, NamedSet, Ruleset } from '@palisade/firewall'
import { compile, diff, renderNftScript } from '@palisade/firewall'
import { Lab } from '@palisade/lab'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { policyWithPeers } from '../../bench/peers.js'
import { NFT_SESSION } from '../../packages/agent/src/netfilter/session-protocol.js'
import { ToolSession } from '../../packages/agent/src/netfilter/tool-session.js'
import { classifyToolFailure } from '../../packages/agent/src/tool-failure.js'
import { SAMPLE_FAILSAFE } from '../../packages/firewall/src/host-policy.fixture.js'

const desiredWith = (extra: string[], version: number): Desired =>
  compile(
    { ...policyWithPeers(2000, 'coexistence_primary', extra), version },
    { backend: 'nftables', failsafe: SAMPLE_FAILSAFE },
  )

/** Our objects with each set's elements in one order (the kernel lists a hash in its own). */
const sorted = (rs: Ruleset): Ruleset => {
  const set = (s: NamedSet): NamedSet => ({ ...s, elements: [...s.elements].sort() })
  return { ...rs, tables: rs.tables.map((t) => ({ ...t, sets: t.sets.map(set) })), ipsets: [] }
}

describe('nftables applies through the tool session', () => {
  let ns: Awaited<ReturnType<typeof Lab.isolated>>
  let oneShot: Awaited<ReturnType<typeof Lab.isolated>>
  beforeAll(async () => {
    ns = await Lab.isolated()
    oneShot = await Lab.isolated()
  })
  afterAll(async () => {
    await ns.destroy()
    await oneShot.destroy()
  })

  const start: ProcessStarter = (cmd, args, on) =>
    startLocal('ip', ['netns', 'exec', ns.ns, cmd, ...args], on)

  /** A dataplane on the namespace, with the tools it started (what went to no session). */
  const dataplane = () => {
    const started: string[] = []
    const run: Runner = (cmd, args, opts) => {
      started.push(`${cmd} ${args.join(' ')}`)
      return ns.run(cmd, args, opts)
    }
    return { dp: new KernelDataplane(run, 'nftables', start, systemClock), started }
  }

  it('makes a full apply and a rules repair without starting nft, as nft -f - makes them', async () => {
    const { dp, started } = dataplane()
    try {
      const d = desiredWith([], 1)
      expect(
        (await dp.apply(d, await dp.read({ elements: true }), { modeChanged: true })).kind,
      ).toBe('full')
      // The same state applied by the one-shot tool, in a namespace of its own.
      await applyDesired(oneShot.run, d, await readOwn(oneShot.run, 'nftables'), {
        modeChanged: true,
      })
      const want = sorted(await readOwn(oneShot.run, 'nftables'))
      expect(sorted(await readOwn(ns.run, 'nftables'))).toEqual(want)

      // Another process flushes our input chain (the first read after an apply is what it read
      // back): the repair, from a read without set contents, rewrites that chain alone.
      await dp.read({ elements: true })
      await ns.run('nft', ['flush', 'chain', 'inet', 'palisade', 'input'])
      const tampered = await dp.read({ elements: false })
      expect(tampered).toEqual(await readOwn(ns.run, 'nftables', { elements: false }))
      expect(tampered.tables[0]?.chains.find((c) => c.name === 'input')?.rules).toEqual([])
      expect(await dp.apply(d, tampered, { modeChanged: false })).toEqual({
        kind: 'rules',
        chains: ['input'],
        tables: ['inet palisade'],
      })
      expect(diff(d, await readOwn(ns.run, 'nftables'))).toEqual([])
      // Only the read of set contents started a tool (a listing of them is not terse).
      expect(started).toEqual(['nft -j list table inet palisade'])
    } finally {
      dp.close()
    }
  })

  it('takes a script of over 1 MB too, and then starts nft again, freeing what it kept', async () => {
    const { dp, started } = dataplane()
    /** The nft processes in the namespace, with the memory each holds (kB). */
    const nfts = async () => {
      const pids = (await ns.run('ip', ['netns', 'pids', ns.ns])).stdout.split('\n')
      return pids.flatMap((pid) => {
        try {
          const status = readFileSync(`/proc/${pid}/status`, 'utf8')
          const rss = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1])
          // An nft that ended but is not yet reaped holds nothing.
          const live = /^Name:\s+nft$/m.test(status) && !/^State:\s+Z/m.test(status)
          return live ? [{ pid, rss }] : []
        } catch {
          return []
        }
      })
    }
    try {
      // 80,000 addresses: 1.3 MB of script.
      const d = compile(
        { ...policyWithPeers(80_000), version: 1 },
        { backend: 'nftables', failsafe: SAMPLE_FAILSAFE },
      )
      expect(renderNftScript(d).length).toBeGreaterThan(1024 * 1024)
      await dp.read({ elements: false })
      expect(
        (await dp.apply(d, await dp.read({ elements: false }), { modeChanged: true })).kind,
      ).toBe('full')
      expect(started).toEqual([])
      const [applied] = await nfts()
      expect(diff(d, await readOwn(ns.run, 'nftables'))).toEqual([])
      // A second after, the nft that took the script is ended and another started.
      await new Promise((r) => setTimeout(r, 1500))
      const [after, ...more] = await nfts()
      expect(more).toEqual([])
      expect(after?.pid).not.toBe(applied?.pid)
      expect(after?.rss).toBeLessThan((applied?.rss ?? 0) / 2)
      // The next read without set contents goes to it.
      await dp.read({ elements: false })
      expect(started).toEqual([])
    } finally {
      dp.close()
    }
  })

  it('runs an included script as one transaction, and words its errors as nft -f - does', async () => {
    const session = new ToolSession(NFT_SESSION, start)
    try {
      const d = desiredWith([], 1)
      expect(await session.run(renderNftScript(d))).toMatchObject({
        code: 0,
        stdout: '',
        stderr: '',
      })
      const before = await readOwn(ns.run, 'nftables')
      expect(diff(d, before)).toEqual([])

      // The whole table again with one address more, then a delete the kernel refuses (the
      // element is not there): nothing of it may be left.
      const set = d.tables[0]?.sets.find((s) => s.family === 4)?.name ?? ''
      const changed = renderNftScript(desiredWith(['203.0.113.50/32'], 2))
      const script = `${changed}delete element inet palisade ${set} { 203.0.113.99 }\n`
      const refused = await session.run(script)
      expect(refused.code).toBe(1)
      expect(refused.stderr).toMatch(/^\/dev\/stdin:\d+:\d+-\d+: Error: /)
      expect(refused.stderr).not.toContain('palisade-session-')
      const lastLine = script.trimEnd().split('\n').length
      expect(classifyToolFailure(refused.stderr).inputLines).toEqual([lastLine])
      // What nft -f - says of the same script, word for word.
      const oneShot = await ns.run('nft', ['-f', '-'], { stdin: script })
      expect(oneShot.code).toBe(1)
      expect(refused.stderr).toBe(oneShot.stderr)
      expect(sorted(await readOwn(ns.run, 'nftables'))).toEqual(sorted(before))

      // The session goes on: the next request is applied.
      expect((await session.run(changed)).code).toBe(0)
      expect(diff(desiredWith(['203.0.113.50/32'], 2), await readOwn(ns.run, 'nftables'))).toEqual(
        [],
      )
    } finally {
      session.close()
    }
  })
})
