/**
 * A change to our rules that the kernel reports while the enforcer reads set contents (the
 * backstop's periodic full read: seconds with 100,000 peers) is repaired without waiting for
 * that read, which gives way and is made again after. The enforcer and the kernel dataplane
 * run in-process against a namespace's kernel, its tools and its `nft monitor`; the read of set
 * contents is held open by a gate in the runner, so the order is certain at any set size.
 */
import type { AgentEvent, Runner } from '@palisade/agent'
import {
  Enforcer,
  KernelDataplane,
  readOwn,
  runChecked,
  startLocal,
  systemClock,
} from '@palisade/agent'
import type { Backend } from '@palisade/firewall'
import { compile, diff, planApply } from '@palisade/firewall'
import { Lab, waitFor } from '@palisade/lab'
import { DEFAULT_FAILSAFE, hostPolicyFromLocalFile } from '@palisade/model'
import { describe, expect, it } from 'vitest'

const desired = (backend: Backend) =>
  compile(
    hostPolicyFromLocalFile({
      version: 1,
      rules: [
        {
          action: 'allow',
          direction: 'inbound',
          peers: ['198.18.0.0/24', '198.18.7.9'],
          services: [{ proto: 6, port: 80 }],
        },
      ],
    }),
    { backend, failsafe: DEFAULT_FAILSAFE },
  )

/** The listing of set contents in a full read of our objects. */
const readsContents = (backend: Backend, cmd: string, args: readonly string[]) =>
  backend === 'nftables'
    ? cmd === 'nft' && args.join(' ') === '-j list table inet palisade'
    : cmd === 'ipset' && args[0] === 'save'

const TAMPER: Partial<Record<Backend, string[]>> = {
  nftables: ['nft', 'flush', 'chain', 'inet', 'palisade', 'input'],
  'iptables-nft': ['iptables-nft', '-w', '-F', 'PALISADE-INPUT'],
}

describe('a change during a read of set contents', () => {
  for (const backend of ['nftables', 'iptables-nft'] as const) {
    it(`${backend}: is repaired while that read is held open; the read gives way and is made again after`, async () => {
      const ns = await Lab.isolated()
      const d = desired(backend)
      const events: AgentEvent[] = []
      let gate: { reached: () => void; aborted: boolean } | undefined
      let contentsReads = 0
      const run: Runner = async (cmd, args, opts) => {
        if (readsContents(backend, cmd, args)) {
          contentsReads++
          const g = gate
          gate = undefined
          if (g) {
            // Held until the enforcer gives the read up; it is never let through otherwise.
            g.reached()
            const signal = opts?.signal
            if (!signal) throw new Error('a read of set contents that cannot give way was held')
            await new Promise((resolve) => signal.addEventListener('abort', resolve))
            g.aborted = true
          }
        }
        return ns.run(cmd, args, opts)
      }
      const enforcer = new Enforcer({
        dataplane: new KernelDataplane(
          run,
          backend,
          (cmd, args, on) => startLocal('ip', ['netns', 'exec', ns.ns, cmd, ...args], on),
          systemClock,
        ),
        clock: systemClock,
        pollMs: null,
        backstopMs: 3_600_000,
        fight: { windowMs: 10_000, threshold: 3 },
        watchEvents: true,
        onEvent: (e) => events.push(e),
        onStatus: () => undefined,
      })
      const inSync = async () =>
        planApply(d, diff(d, await readOwn(ns.run, backend))).kind === 'none' || undefined
      try {
        enforcer.start()
        enforcer.setDesired(d)
        await waitFor('the policy applied', () =>
          Promise.resolve(enforcer.verified === d || undefined),
        )
        await enforcer.settled()
        const held = { reached: () => undefined as void, aborted: false }
        const reached = new Promise<void>((resolve) => (held.reached = resolve))
        gate = held
        const before = contentsReads
        enforcer.trigger('backstop')
        await reached
        const [cmd = '', ...args] = TAMPER[backend] ?? []
        await runChecked(ns.run, cmd, args)
        const tampering = () => events.filter((e) => e.event_type === 'agent.tampering')
        await waitFor('the repair reported while the read of set contents is held', () =>
          Promise.resolve(tampering()[0]),
        )
        expect(held.aborted).toBe(true)
        expect(tampering()).toHaveLength(1)
        expect(tampering()[0]?.details.trigger).toBe('kernel change event')
        await waitFor('the read of set contents made again', () =>
          Promise.resolve(contentsReads >= before + 2 ? true : undefined),
        )
        await enforcer.settled()
        expect(await inSync()).toBe(true)
        expect(enforcer.status.health).toBe('healthy')
      } finally {
        enforcer.stop()
        await ns.destroy()
      }
    })
  }
})
