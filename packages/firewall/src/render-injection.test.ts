import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import { compile } from './compile.js'
import { SAMPLE_FAILSAFE, SAMPLE_POLICY } from './host-policy.fixture.js'
import type { Backend, Desired } from './ours.js'
import { BACKENDS } from './ours.js'
import { RenderError } from './render-grammar.js'
import type { IptablesApplyContext } from './render-iptables.js'
import {
  renderIpsetDelta,
  renderIpsetDestroy,
  renderIpsetStage,
  renderIpsetSwap,
  renderIptablesRestore,
} from './render-iptables.js'
import {
  renderClosedScript,
  renderNftChains,
  renderNftScript,
  renderNftSetDelta,
} from './render-nft.js'
import {
  closedScriptProblem,
  iptablesRestoreProblem,
  ipsetProblem,
  nftCommandsProblem,
  nftScriptProblem,
} from './render-oracle.fixture.js'
import type { Chain, Rule, Table } from './ruleset.js'

/** The injections found against the agent, and their kin. */
const INJECTIONS = {
  'a peer that closes the set and adds an accepting table':
    '10.9.9.9/32 } ; }\ntable inet injected { chain c { type filter hook input priority -300; policy accept; accept } }\ntable inet palisade { set s { type ipv4_addr; elements = { 10.9.9.8/32',
  'an include that prints a host file': 'include "/etc/shadow"',
  'a define and a variable':
    'x\ndefine ANY = 0.0.0.0/0\nadd rule inet palisade input ip saddr $ANY accept',
  'an ipset command on a new line': '198.18.0.1/32\ncreate evil hash:ip\nadd evil 198.18.0.1',
  'an iptables rule on a new line': 'lo\n-I INPUT 1 -j ACCEPT',
  'a quote that closes the string': 'pal" accept comment "x',
  'a comment that hides the rest of the line': '198.18.0.1/32 # ',
  'a semicolon that ends the statement': 'eth0; add rule inet palisade input accept',
  'a flush of the whole ruleset': '}\nflush ruleset\n',
  'a table switch inside iptables-restore': '-t nat -A POSTROUTING -j MASQUERADE',
} as const

/** Everything the renderers take for one backend, in one object whose every leaf is mutated. */
interface Inputs {
  readonly desired: Desired
  readonly changes: { set: string; add: string[]; remove: string[] }[]
  readonly chains: string[]
  readonly existing: string[]
  readonly ports: number[]
  readonly ctx: IptablesApplyContext
  readonly destroy: string[]
}

const extraRule = (family: 4 | 6, target: string): Rule => ({
  matches: [
    { kind: 'iface', dir: 'in', name: 'eth0', negate: true },
    { kind: 'addr', dir: 'src', family, cidrs: [family === 4 ? '198.18.0.0/24' : 'fd00::/64'] },
    { kind: 'proto', proto: 17, negate: true },
    {
      kind: 'port',
      proto: 17,
      dir: 'src',
      ranges: [
        [1, 2],
        [5, 5],
      ],
    },
  ],
  verdict: { kind: 'jump', target },
  comment: 'palisade:0123456789abcdef',
})

/** A desired state holding every kind of match, verdict, chain, set and log the renderers write. */
function richDesired(backend: Backend): Desired {
  const d = compile(SAMPLE_POLICY, { backend, failsafe: SAMPLE_FAILSAFE })
  const extra = backend === 'nftables' ? 'extra' : 'PALISADE-EXTRA'
  const enrich = (t: Table): Table => {
    const family = t.family === 'ip' ? 4 : 6
    const chains: Chain[] = t.chains.map((c, i) =>
      i === 0 ? { ...c, rules: [...c.rules, extraRule(family, extra)] } : c,
    )
    const more: Rule = { ...extraRule(family, extra), verdict: { kind: 'goto', target: extra } }
    chains.push({ name: extra, rules: [more, { matches: [], verdict: { kind: 'return' } }] })
    return { ...t, chains }
  }
  return { ...d, tables: d.tables.map(enrich) }
}

function inputs(backend: Backend): Inputs {
  const desired = richDesired(backend)
  const sets = backend === 'nftables' ? (desired.tables[0]?.sets ?? []) : desired.ipsets
  const first = sets[0]?.name ?? ''
  return {
    desired,
    changes: [{ set: first, add: ['198.18.9.0/24', 'fd00::9/128'], remove: ['198.18.0.11/32'] }],
    chains: [...(desired.tables[0]?.chains.map((c) => c.name) ?? []), 'stale'],
    existing: sets.map((s) => s.name),
    ports: [22, 2222],
    ctx: {
      hooksFound: [
        {
          family: 'ip',
          chain: 'INPUT',
          index: 1,
          spec: '-m comment --comment palisade:0123 -j PALISADE-INPUT',
        },
      ],
      modeChanged: false,
      foreignToDelete: [
        { family: 'ip', chain: 'INPUT', spec: '-p tcp -m tcp --dport 22 -j ACCEPT' },
        { family: 'ip6', chain: 'OUTPUT', spec: '-m comment --comment "a \\"quoted\\" note"' },
      ],
      staleChains: [{ family: 'ip6', chain: 'PALISADE-OLD' }],
    },
    destroy: ['palisade-0123456789-v4', 'docker-owned'],
  }
}

interface Render {
  readonly name: string
  readonly render: () => string
  readonly problem: (text: string) => string | undefined
}

function renders(backend: Backend, x: Inputs): Render[] {
  const d = x.desired
  if (backend === 'nftables') {
    return [
      { name: 'nft script', render: () => renderNftScript(d), problem: nftScriptProblem },
      {
        name: 'nft chains',
        render: () => renderNftChains(d, x.chains, new Set(x.existing)),
        problem: nftCommandsProblem,
      },
      {
        name: 'nft set delta',
        render: () => renderNftSetDelta(x.changes),
        problem: nftCommandsProblem,
      },
      { name: 'closed', render: () => renderClosedScript(x.ports), problem: closedScriptProblem },
    ]
  }
  const deletable = new Set([...x.ctx.hooksFound, ...x.ctx.foreignToDelete].map((h) => h.spec))
  const existing = new Set(x.existing)
  return [
    ...(['ip', 'ip6'] as const).map((family) => ({
      name: `iptables-restore ${family}`,
      render: () => renderIptablesRestore(d, family, x.ctx),
      problem: (t: string) => iptablesRestoreProblem(t, deletable),
    })),
    {
      name: 'ipset stage',
      render: () => renderIpsetStage(d.ipsets, existing),
      problem: ipsetProblem,
    },
    {
      name: 'ipset swap',
      render: () => renderIpsetSwap(d.ipsets, existing),
      problem: ipsetProblem,
    },
    { name: 'ipset destroy', render: () => renderIpsetDestroy(x.destroy), problem: ipsetProblem },
    { name: 'ipset delta', render: () => renderIpsetDelta(x.changes), problem: ipsetProblem },
  ]
}

type Path = readonly (string | number)[]
interface Leaf {
  readonly path: Path
  readonly value: string | number
}

/** Every string and number in `x`, with where it is. */
function leaves(x: unknown, path: Path = []): Leaf[] {
  if (typeof x === 'string' || typeof x === 'number') return [{ path, value: x }]
  if (Array.isArray(x)) return x.flatMap((v, i) => leaves(v, [...path, i]))
  if (x && typeof x === 'object')
    return Object.entries(x).flatMap(([k, v]) => leaves(v, [...path, k]))
  return []
}

/** A copy of `x` with the value at `path` replaced. */
function replaced(x: unknown, path: Path, value: unknown): unknown {
  if (path.length === 0) return value
  const [head, ...rest] = path
  if (Array.isArray(x)) return x.map((v: unknown, i) => (i === head ? replaced(v, rest, value) : v))
  const o = x as Record<string, unknown>
  return { ...o, [head as string]: replaced(o[head as string], rest, value) }
}

const SYNTAX = [...'{}[]();#"\'\\\n\r\t $@*,./:-_!=<>|&`', 'include', 'define', 'table', '\u0000']
/** A string another could have put in any field: injections, syntax, near misses, anything. */
const hostileString = (original: string) =>
  fc.oneof(
    fc.constantFrom(...Object.values(INJECTIONS)),
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'binary', maxLength: 20 }),
    fc.string({ unit: fc.constantFrom(...SYNTAX, 'a', 'Z', '0', '9'), maxLength: 24 }),
    fc.tuple(fc.nat(), fc.constantFrom(...SYNTAX), fc.boolean()).map(([at, s, cut]) => {
      const i = at % (original.length + 1)
      return original.slice(0, i) + s + original.slice(cut ? i + 1 : i)
    }),
    fc.oneof(fc.ipV4(), fc.ipV6()).map((a) => `${a}/${a.includes(':') ? 128 : 32}`),
  )
const hostileNumber = fc.oneof(
  fc.integer(),
  fc.integer({ min: -2, max: 70_000 }),
  fc.double(),
  fc.constantFrom(
    NaN,
    Infinity,
    -Infinity,
    -0,
    0.5,
    255,
    256,
    65535,
    65536,
    2 ** 31,
    -(2 ** 31) - 1,
  ),
)

/** Fields only compared or looked up, never written into tool input. */
const UNWRITTEN = [
  'desired.backend',
  'desired.version',
  'desired.mode',
  'desired.hookPosition',
  'existing.#',
  'ctx.hooksFound.#.family',
  'ctx.hooksFound.#.index',
  'ctx.foreignToDelete.#.family',
  'ctx.staleChains.#.family',
  'destroy.#',
]
const UNWRITTEN_BY_NFT = [
  'ctx.hooksFound.#.chain',
  'ctx.hooksFound.#.spec',
  'ctx.foreignToDelete.#.chain',
  'ctx.foreignToDelete.#.spec',
  'ctx.staleChains.#.chain',
]
/** iptables: a table (or hook) of another family or name is simply not the one rendered. */
const UNWRITTEN_BY_IPTABLES = [
  'desired.tables.#.family',
  'desired.tables.#.name',
  'desired.tables.#.source',
  'desired.tables.#.chains.#.rules.#.matches.#.family',
  'desired.hooks.#.family',
  'chains.#',
  'ports.#',
]

const outcomes = { runs: 0, renders: 0, refused: 0, accepted: 0, fields: 0 }
/** Fields that were mutated (alone), and those whose mutation some renderer refused. */
const mutated = new Set<string>()
const refusing = new Set<string>()
afterAll(() => {
  console.log(
    `render injection property: ${outcomes.runs} runs, ${outcomes.renders} renders: ${outcomes.refused} refused with RenderError, ${outcomes.accepted} accepted and read back as ours only; of ${outcomes.fields} fields, ${mutated.size} mutated alone, ${refusing.size} of them refused`,
  )
})

describe('renderers refuse anything outside their grammar', () => {
  describe.each(BACKENDS)('%s', (backend) => {
    const base = inputs(backend)
    const all = leaves(base)
    outcomes.fields += all.length

    it('renders the unaltered inputs, and the readers take all of it as ours', () => {
      for (const r of renders(backend, base)) expect(r.problem(r.render()), r.name).toBeUndefined()
    })

    it('refuses an injection in every field it writes, and writes nothing else', () => {
      const unwritten = new Set<string>()
      for (const leaf of all) {
        const values =
          typeof leaf.value === 'string'
            ? [
                INJECTIONS['an include that prints a host file'],
                `${leaf.value}\n}`,
                `${leaf.value};`,
                // read as an option by iptables-restore (found by the property below)
                `-${leaf.value}`,
              ]
            : [NaN, -1, 2 ** 40, 0.5]
        let refused = false
        for (const value of values) {
          const x = replaced(base, leaf.path, value) as Inputs
          for (const r of renders(backend, x)) {
            let text: string
            try {
              text = r.render()
            } catch (e) {
              if (!(e instanceof RenderError)) throw e
              refused = true
              continue
            }
            expect(
              r.problem(text),
              `${r.name} with ${leaf.path.join('.')}=${value}`,
            ).toBeUndefined()
          }
        }
        if (!refused) unwritten.add(leaf.path.join('.').replace(/\.\d+/g, '.#'))
      }
      // what no renderer of this backend writes, so no value there can do harm
      expect([...unwritten].sort()).toEqual(
        [
          ...UNWRITTEN,
          ...(backend === 'nftables' ? UNWRITTEN_BY_NFT : UNWRITTEN_BY_IPTABLES),
        ].sort(),
      )
    })

    it('either refuses or writes only our own statements, whatever any field holds (property)', () => {
      const mutation = fc.nat({ max: all.length - 1 }).chain((i) => {
        const leaf = all[i] as Leaf
        const value = typeof leaf.value === 'string' ? hostileString(leaf.value) : hostileNumber
        return fc.record({ path: fc.constant(leaf.path), value })
      })
      fc.assert(
        fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), (ms) => {
          outcomes.runs++
          const x = ms.reduce<unknown>((acc, m) => replaced(acc, m.path, m.value), base) as Inputs
          const alone = ms.length === 1 ? `${backend} ${ms[0]?.path.join('.')}` : undefined
          if (alone) mutated.add(alone)
          for (const r of renders(backend, x)) {
            outcomes.renders++
            let text: string
            try {
              text = r.render()
            } catch (e) {
              if (!(e instanceof RenderError)) throw e
              outcomes.refused++
              if (alone) refusing.add(alone)
              continue
            }
            outcomes.accepted++
            expect(r.problem(text), `${r.name} with ${JSON.stringify(ms)}`).toBeUndefined()
          }
        }),
        { numRuns: Number(process.env.PALISADE_PROPERTY_RUNS ?? 1500) },
      )
    })
  })
})

describe('the injections found against the agent', () => {
  const peerIn = (backend: Backend, peer: string): Desired => {
    const rules = SAMPLE_POLICY.rules.map((r) =>
      r.key === '/r/2#in' && r.peers !== 'any' ? { ...r, peers: { ...r.peers, v4: [peer] } } : r,
    )
    return compile({ ...SAMPLE_POLICY, rules }, { backend, failsafe: SAMPLE_FAILSAFE })
  }
  const NO_STATE = { hooksFound: [], modeChanged: true, foreignToDelete: [], staleChains: [] }

  it.each(Object.entries(INJECTIONS))('%s, as a peer: refused, naming the field', (_n, peer) => {
    for (const backend of BACKENDS) {
      const d = peerIn(backend, peer)
      const render =
        backend === 'nftables'
          ? () => renderNftScript(d)
          : () => renderIpsetStage(d.ipsets, new Set()) + renderIptablesRestore(d, 'ip', NO_STATE)
      expect(render, backend).toThrow(RenderError)
      expect(render, backend).toThrow(/^cannot render set element "/)
      // a bounded excerpt of the value, never the whole of it
      try {
        render()
      } catch (e) {
        expect((e as Error).message.length, backend).toBeLessThan(200)
        expect((e as Error).message).toContain(JSON.stringify(peer.slice(0, 20)).slice(1, -1))
      }
    }
  })

  it.each(Object.entries(INJECTIONS))('%s, in a set delta: refused', (_n, peer) => {
    const change = (set: string) => [{ set, add: [peer], remove: [] }]
    expect(() => renderNftSetDelta(change('peers_0123456789_v4'))).toThrow(RenderError)
    expect(() => renderIpsetDelta(change('palisade-0123456789-v4'))).toThrow(RenderError)
  })

  it.each(Object.entries(INJECTIONS))('%s, as a name, comment or prefix: refused', (_n, text) => {
    const d = richDesired('nftables')
    const rule = d.tables[0]?.chains[0]?.rules[0] as Rule
    const withRule = (r: Rule): Desired => ({
      ...d,
      tables: d.tables.map((t) => ({
        ...t,
        chains: t.chains.map((c, i) => (i === 0 ? { ...c, rules: [r] } : c)),
      })),
    })
    const cases: Desired[] = [
      withRule({ ...rule, comment: text }),
      withRule({ ...rule, matches: [{ kind: 'iface', dir: 'in', name: text }] }),
      withRule({ ...rule, log: { group: 1, prefix: text, snaplen: 64, threshold: 1 } }),
      withRule({ ...rule, verdict: { kind: 'jump', target: text } }),
      withRule({ ...rule, matches: [{ kind: 'addr', dir: 'src', family: 4, set: text }] }),
    ]
    for (const c of cases) expect(() => renderNftScript(c)).toThrow(RenderError)
  })
})
