import type { CoexistenceMode } from '@palisade/model'
import { describe, expect, it } from 'vitest'
import { applyScript } from './apply-script.js'
import { compile } from './compile.js'
import { diff } from './diff.js'
import { SAMPLE_FAILSAFE, SAMPLE_POLICY } from './host-policy.fixture.js'
import { liveRuleset } from './live.fixture.js'
import { parseIptablesSave } from './parse-iptables.js'
import { planApply } from './plan.js'
import { filterAfterRestore } from './restore-onto.js'
import type { Ruleset, Table } from './ruleset.js'
import { findTable } from './ruleset.js'

const save = (lines: readonly string[]): Table | undefined =>
  parseIptablesSave(['*filter', ...lines, 'COMMIT'].join('\n'), 'ip', 'iptables-nft').tables[0]
const restore = (lines: readonly string[]) => ['*filter', ...lines, 'COMMIT', ''].join('\n')
const BUILTINS = [':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]']
const HOOK = '-m comment --comment "palisade hook" -j PALISADE-IN'

describe('filterAfterRestore: the table a commit leaves, as iptables-save would list it', () => {
  const cases: {
    name: string
    before: readonly string[] | undefined
    restore: readonly string[]
    after: readonly string[] | undefined
  }[] = [
    {
      name: 'onto no table: the built-in chains are listed, as iptables-nft-save lists them',
      before: undefined,
      restore: [':PALISADE-IN - [0:0]', `-I INPUT 1 ${HOOK}`, '-A PALISADE-IN -j DROP'],
      after: [...BUILTINS, ':PALISADE-IN - [0:0]', `-A INPUT ${HOOK}`, '-A PALISADE-IN -j DROP'],
    },
    {
      name: 'a declared chain that exists is emptied, then filled',
      before: [...BUILTINS, ':PALISADE-IN - [0:0]', '-A PALISADE-IN -j ACCEPT'],
      restore: [':PALISADE-IN - [0:0]', '-A PALISADE-IN -j DROP'],
      after: [...BUILTINS, ':PALISADE-IN - [0:0]', '-A PALISADE-IN -j DROP'],
    },
    {
      name: 'an insert goes before what the chain held; an append after',
      before: [...BUILTINS, '-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT'],
      restore: [
        ':PALISADE-IN - [0:0]',
        `-I INPUT 1 ${HOOK}`,
        '-A OUTPUT -j PALISADE-IN',
        '-A PALISADE-IN -j RETURN',
      ],
      after: [
        ...BUILTINS,
        ':PALISADE-IN - [0:0]',
        `-A INPUT ${HOOK}`,
        '-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT',
        '-A OUTPUT -j PALISADE-IN',
        '-A PALISADE-IN -j RETURN',
      ],
    },
    {
      name: 'a delete takes the first rule of its text, and keeps a policy of DROP',
      before: [
        ':INPUT DROP [0:0]',
        ':FORWARD ACCEPT [0:0]',
        ':OUTPUT ACCEPT [0:0]',
        ':PALISADE-IN - [0:0]',
        '-A INPUT -j ACCEPT',
        `-A INPUT ${HOOK}`,
        '-A INPUT -j ACCEPT',
      ],
      restore: ['-D INPUT -j ACCEPT'],
      after: [
        ':INPUT DROP [0:0]',
        ':FORWARD ACCEPT [0:0]',
        ':OUTPUT ACCEPT [0:0]',
        ':PALISADE-IN - [0:0]',
        `-A INPUT ${HOOK}`,
        '-A INPUT -j ACCEPT',
      ],
    },
    {
      name: 'a stale chain is flushed, then deleted',
      before: [...BUILTINS, ':PALISADE-OLD - [0:0]', '-A PALISADE-OLD -j DROP'],
      restore: ['-F PALISADE-OLD', '-X PALISADE-OLD'],
      after: BUILTINS,
    },
    {
      name: 'a delete that finds no rule of its text: the commit failed, the table must be read',
      before: [...BUILTINS, '-A INPUT -j ACCEPT'],
      restore: ['-D INPUT -j DROP'],
      after: undefined,
    },
    {
      name: 'a rule for a chain neither there nor declared: read',
      before: BUILTINS,
      restore: ['-A NOWHERE -j DROP'],
      after: undefined,
    },
    {
      name: 'a chain deleted while it holds rules (the kernel refuses): read',
      before: [...BUILTINS, ':PALISADE-OLD - [0:0]', '-A PALISADE-OLD -j DROP'],
      restore: ['-X PALISADE-OLD'],
      after: undefined,
    },
    {
      name: 'an insert at a position other than the first: not followed, read',
      before: [...BUILTINS, '-A INPUT -j ACCEPT'],
      restore: ['-I INPUT 2 -j DROP'],
      after: undefined,
    },
    {
      name: 'a line this does not follow (a policy change): read',
      before: BUILTINS,
      restore: ['-P INPUT DROP'],
      after: undefined,
    },
    {
      name: 'a text that does not parse (an unclosed quote): read',
      before: BUILTINS,
      restore: ['-A INPUT -m comment --comment "open -j ACCEPT'],
      after: undefined,
    },
  ]
  for (const c of cases)
    it(c.name, () => {
      const before = c.before && save(c.before)
      const after = filterAfterRestore(before, 'ip', 'iptables-nft', restore(c.restore))
      expect(after).toEqual(c.after && save(c.after))
    })

  it('text that is not one filter table committed: read', () => {
    expect(filterAfterRestore(undefined, 'ip', 'iptables-nft', '*nat\nCOMMIT\n')).toBeUndefined()
    expect(filterAfterRestore(undefined, 'ip', 'iptables-nft', '*filter\n')).toBeUndefined()
  })

  it('a rule whose text is unknown (not read from a listing): read', () => {
    const before = save(BUILTINS)
    const input = before?.chains.find((c) => c.name === 'INPUT')
    if (!before || !input) throw new Error('fixture')
    const textless: Table = {
      ...before,
      chains: before.chains.map((c) =>
        c === input ? { ...c, rules: [{ matches: [], verdict: { kind: 'accept' } }] } : c,
      ),
    }
    expect(filterAfterRestore(textless, 'ip', 'iptables-nft', restore([]))).toBeUndefined()
  })
})

describe('filterAfterRestore over the commits applyScript writes', () => {
  const FOREIGN = '-p tcp -m tcp --dport 22 -j ACCEPT'
  const foreign = save([...BUILTINS, `-A INPUT ${FOREIGN}`])?.chains[0]?.rules ?? []
  const empty: Ruleset = { tables: [], ipsets: [] }
  const modes: CoexistenceMode[] = ['exclusive', 'coexistence_primary', 'coexistence_non_primary']
  for (const backend of ['iptables-nft', 'iptables-legacy'] as const)
    for (const mode of modes)
      for (const [from, actual] of [
        ['nothing of ours', () => empty],
        [
          'another mode, with a foreign rule before each hook',
          () => liveRuleset(other(backend, mode), (_f, _c, hook) => [...foreign, hook]),
        ],
      ] as const)
        it(`${backend}, ${mode}, from ${from}: the tables left are the desired state`, () => {
          const d = desired(backend, mode)
          const had = actual()
          const { commands } = applyScript(d, had, { modeChanged: true })
          const tables = (['ip', 'ip6'] as const).map((f) => {
            const text = commands.find((c) => c.cmd.startsWith(`${f}tables-`))?.stdin
            if (text === undefined) throw new Error(`no ${f} commit`)
            const t = filterAfterRestore(findTable(had, backend, f, 'filter'), f, backend, text)
            if (!t) throw new Error(`${f}: the commit could not be followed`)
            return t
          })
          const after: Ruleset = { tables, ipsets: d.ipsets }
          expect(planApply(d, diff(d, after))).toEqual({ kind: 'none' })
          // Exclusive overwrites what stood before our hook; the other modes keep it.
          const input = tables[0]?.chains.find((c) => c.name === 'INPUT')?.rules ?? []
          expect(input.some((r) => r.text === FOREIGN)).toBe(
            from !== 'nothing of ours' && mode !== 'exclusive',
          )
        })
})

const desired = (backend: 'iptables-nft' | 'iptables-legacy', mode: CoexistenceMode) =>
  compile(
    { ...SAMPLE_POLICY, mode: { ...SAMPLE_POLICY.mode, mode } },
    { backend, failsafe: SAMPLE_FAILSAFE },
  )
/** A mode other than `mode`, whose hooks stand elsewhere. */
const other = (backend: 'iptables-nft' | 'iptables-legacy', mode: CoexistenceMode) =>
  desired(
    backend,
    mode === 'coexistence_non_primary' ? 'coexistence_primary' : 'coexistence_non_primary',
  )
