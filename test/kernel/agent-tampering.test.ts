/**
 * A real agent in a namespace, and every way of tampering with its rules the issue lists:
 * each must be detected, reported as agent.tampering and repaired to exactly what we render.
 */
import type { Runner } from '@palisade/agent'
import { readOwn, runChecked } from '@palisade/agent'
import type { Backend, NamedSet } from '@palisade/firewall'
import { BACKENDS, compile, diff, findHooks, findTable, planApply } from '@palisade/firewall'
import { Lab, LabAgent, resetFirewall, waitFor } from '@palisade/lab'
import { DEFAULT_FAILSAFE, hostPolicyFromLocalFile } from '@palisade/model'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const policy = (primary: boolean | null, version = 1) => ({
  version,
  enforcement_mode: 'full',
  firewall_coexistence: primary === null ? null : { illumio_primary: primary },
  rules: [
    {
      action: 'allow',
      direction: 'inbound',
      peers: ['198.18.0.0/24', 'fd00:198:18::/64'],
      services: [{ proto: 6, port: 80 }],
    },
    { action: 'deny', direction: 'inbound', peers: 'any', services: [{ proto: 17, port: 53 }] },
  ],
})

const sh = (run: Runner, line: string) => {
  const [cmd = '', ...args] = line.split(' ')
  return runChecked(run, cmd, args)
}

async function inSync(run: Runner, backend: Backend, doc: unknown): Promise<boolean> {
  const desired = compile(hostPolicyFromLocalFile(doc), { backend, failsafe: DEFAULT_FAILSAFE })
  return planApply(desired, diff(desired, await readOwn(run, backend))).kind === 'none'
}

/**
 * Our rules as the kernel holds them, read back and parsed (sets with their elements, chains
 * with their rules in order; counters and the tools' own listing left out, chains and sets by
 * name): what the agent first applied must come back exactly, judged without its diff.
 */
async function ownRuleset(run: Runner, backend: Backend) {
  const own = await readOwn(run, backend)
  const byName = <T extends { name: string }>(xs: readonly T[]) =>
    [...xs].sort((a, b) => a.name.localeCompare(b.name))
  const sets = (xs: readonly NamedSet[]) =>
    byName(xs).map((x) => ({ ...x, elements: [...x.elements].sort() }))
  return {
    tables: own.tables.map((t) => ({
      table: `${t.family} ${t.name}`,
      sets: sets(t.sets),
      chains: byName(t.chains).map((c) => ({
        name: c.name,
        base: c.base,
        rules: c.rules.map((r) => ({
          matches: r.matches,
          verdict: r.verdict,
          log: r.log,
          comment: r.comment,
        })),
      })),
    })),
    ipsets: sets(own.ipsets.filter((x) => x.name.startsWith('palisade-'))),
  }
}

type Scenario = readonly [name: string, tamper: (run: Runner, agent: LabAgent) => Promise<unknown>]
const ipt = (b: Backend) => (b === 'iptables-legacy' ? 'iptables-legacy' : 'iptables-nft')

function scenarios(backend: Backend): Scenario[] {
  if (backend === 'nftables') {
    return [
      [
        'delete one of our rules',
        async (run) => {
          const handle = /handle (\d+)/.exec(
            (await sh(run, 'nft -a list chain inet palisade input'))
              .split('\n')
              .filter((l) => l.includes('dport 80'))[0] ?? '',
          )?.[1]
          return sh(run, `nft delete rule inet palisade input handle ${handle}`)
        },
      ],
      [
        'add a rule into our chain',
        (run) => sh(run, 'nft insert rule inet palisade input tcp dport 9999 accept'),
      ],
      ['flush our chain', (run) => sh(run, 'nft flush chain inet palisade input')],
      ['delete our table', (run) => sh(run, 'nft delete table inet palisade')],
      ['nft flush ruleset', (run) => sh(run, 'nft flush ruleset')],
      [
        'delete our set elements',
        async (run) => {
          // A set that holds some (a rule's single addresses and its prefixes are two sets).
          const set =
            /set (peers_\w+) \{[^}]*elements =/.exec(
              await sh(run, 'nft list table inet palisade'),
            )?.[1] ?? ''
          return sh(run, `nft flush set inet palisade ${set}`)
        },
      ],
      [
        'add an address to our set',
        async (run) => {
          const set =
            /set (peers_\w+_v4)/.exec(await sh(run, 'nft list table inet palisade'))?.[1] ?? ''
          return sh(run, `nft add element inet palisade ${set} { 203.0.113.7 }`)
        },
      ],
      [
        'delete one of our chains',
        (run) =>
          runChecked(run, 'nft', ['-f', '-'], {
            stdin: 'flush chain inet palisade forward\ndelete chain inet palisade forward\n',
          }),
      ],
    ]
  }
  const t = ipt(backend)
  return [
    ['delete one of our rules', (run) => sh(run, `${t} -D PALISADE-INPUT 2`)],
    [
      'add a rule into our chain',
      (run) => sh(run, `${t} -I PALISADE-INPUT 1 -p tcp --dport 9999 -j ACCEPT`),
    ],
    ['flush our chains', (run) => sh(run, `${t} -F PALISADE-INPUT`)],
    ['iptables -F', (run) => sh(run, `${t} -F`)],
    ['delete our hook', (run) => sh(run, `${t} -D INPUT 1`)],
    [
      'delete our ipset elements',
      async (run) => {
        const set = /create (palisade-\w+-v4) /.exec(await sh(run, 'ipset save'))?.[1] ?? ''
        return sh(run, `ipset flush ${set}`)
      },
    ],
    [
      'add an address to our ipset',
      async (run) => {
        const set = /create (palisade-\w+-v4) /.exec(await sh(run, 'ipset save'))?.[1] ?? ''
        return sh(run, `ipset add ${set} 203.0.113.7`)
      },
    ],
    [
      'delete our ipset',
      async (run, agent) => {
        const set = /create (palisade-\w+-v4) /.exec(await sh(run, 'ipset save'))?.[1] ?? ''
        // Two commands, and the agent repairs the first within a poll, putting back the rule
        // that keeps the set in use: held still meanwhile, it sees both as one change.
        agent.pause()
        try {
          await sh(run, `${t} -F`)
          return await sh(run, `ipset destroy ${set}`)
        } finally {
          agent.resume()
        }
      },
    ],
    ...(backend === 'iptables-nft'
      ? ([['nft flush ruleset', (run: Runner) => sh(run, 'nft flush ruleset')]] as const)
      : []),
  ]
}

describe('agent: tampering is detected, reported and repaired (real kernel)', () => {
  let lab: Lab
  beforeAll(async () => {
    lab = await Lab.create(['t1'])
  })
  afterAll(async () => {
    await lab?.destroy()
  })

  for (const backend of BACKENDS) {
    it(`${backend}: every tampering scenario`, async () => {
      const h = lab.host('t1')
      const doc = policy(true)
      const agent = await LabAgent.start(h.ns, backend, doc)
      try {
        const applied = await ownRuleset(h.run, backend)
        let repairs = 0
        for (const [name, tamper] of scenarios(backend)) {
          await tamper(h.run, agent)
          repairs++
          await waitFor(`${backend}: repair #${repairs} after "${name}"`, async () =>
            (await agent.status())?.enforcement.tampering.repairs === repairs ? true : undefined,
          )
          expect(await inSync(h.run, backend, doc), name).toBe(true)
          expect(await ownRuleset(h.run, backend), `${name}: as first applied`).toEqual(applied)
        }
        // Repairs close together are one ongoing condition, not a storm of events.
        const events = (await agent.events()).filter((e) => e.event_type === 'agent.tampering')
        expect(events.length).toBeGreaterThanOrEqual(3)
        expect(events.length).toBeLessThan(repairs)
        expect(events[0]?.details).toMatchObject({ condition: 'repaired', repaired: true })
        expect((events[0]?.details.changes as unknown[]).length).toBeGreaterThan(0)
        expect(events[events.length - 1]?.details.condition).toBe('ongoing')
        if (backend !== 'iptables-legacy') {
          // nf_tables names the process that made the change.
          expect(events[0]?.details.process).toMatchObject({
            comm: backend === 'nftables' ? 'nft' : 'iptables-nft',
          })
        }
      } finally {
        await agent.cleanup()
        await resetFirewall(h.run)
      }
    })
  }

  for (const backend of ['iptables-nft', 'iptables-legacy'] as const) {
    it(`${backend}: a foreign rule above our hook is moved below (primary) or removed (exclusive)`, async () => {
      const h = lab.host('t1')
      const t = ipt(backend)
      for (const primary of [true, null] as const) {
        const agent = await LabAgent.start(h.ns, backend, policy(primary))
        try {
          await sh(h.run, `${t} -I INPUT 1 -p tcp --dport 9998 -j ACCEPT`)
          await agent.waitTampering(1)
          const input = await waitFor('hook back on top', async () => {
            const own = await readOwn(h.run, backend)
            const hooks = findHooks(findTable(own, backend, 'ip', 'filter'))
            const chain = findTable(own, backend, 'ip', 'filter')?.chains.find(
              (c) => c.name === 'INPUT',
            )
            return hooks.find((x) => x.chain === 'INPUT')?.index === 0 ? chain : undefined
          })
          const foreign = input.rules.filter((r) => r.text?.includes('9998'))
          expect(
            foreign.length,
            primary ? 'primary keeps the foreign rule, after us' : 'exclusive overwrites it',
          ).toBe(primary ? 1 : 0)
        } finally {
          await agent.cleanup()
          await resetFirewall(h.run)
        }
      }
    })
  }

  for (const backend of ['iptables-nft', 'iptables-legacy'] as const) {
    it(`${backend} non-primary: foreign rules before and after us stay exactly as they were over 50 applies`, async () => {
      const h = lab.host('t1')
      const t = ipt(backend)
      const agent = await LabAgent.start(h.ns, backend, policy(false))
      try {
        await sh(h.run, `${t} -I INPUT 1 -p tcp --dport 1111 -j ACCEPT`)
        await sh(h.run, `${t} -A INPUT -p tcp --dport 2222 -j DROP`)
        const foreign = async () =>
          (await sh(h.run, `${t}-save`))
            .split('\n')
            .filter(
              (l) => l.startsWith('-A') && !l.includes('palisade:') && !l.includes('PALISADE-'),
            )
        const before = await foreign()
        expect(before).toHaveLength(2)
        for (let v = 2; v <= 51; v++) {
          await agent.writePolicy(policy(false, v))
          await agent.waitApplied(v)
        }
        expect(await foreign()).toEqual(before)
        expect((await agent.events()).filter((e) => e.event_type === 'agent.tampering')).toEqual([])
        // our hook stayed where others put it: behind the foreign accept
        const hooks = findHooks(findTable(await readOwn(h.run, backend), backend, 'ip', 'filter'))
        expect(hooks.find((x) => x.chain === 'INPUT')?.index).toBe(1)
      } finally {
        await agent.cleanup()
        await resetFirewall(h.run)
      }
    })
  }
})
