import type { Ruleset } from '@palisade/firewall'
import { compile, diff } from '@palisade/firewall'
import { readFileSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { SAMPLE_FAILSAFE, SAMPLE_POLICY } from '../../firewall/src/host-policy.fixture.js'
import { FakeClock } from './clock-fake.fixture.js'
import { KernelDataplane } from './dataplane-kernel.js'
import type { ProcessHandlers, RunOptions, RunResult } from './exec.js'

const desired = compile(SAMPLE_POLICY, { backend: 'nftables', failsafe: SAMPLE_FAILSAFE })

/** The chains and set headers of a table holding `desired`, as nft lists them in JSON. */
const chainItems = (desired.tables[0]?.chains ?? []).map((c) => ({
  chain: { family: 'inet', table: 'palisade', name: c.name, ...c.base, prio: c.base?.priority },
}))
const setItems = (desired.tables[0]?.sets ?? []).map((s) => ({
  set: {
    family: 'inet',
    table: 'palisade',
    name: s.name,
    type: s.withPort ? [`ipv${s.family}_addr`, 'inet_service'] : `ipv${s.family}_addr`,
    ...(!s.exact && !s.withPort && { flags: ['interval'] }),
  },
}))

/** What `nft -t -j 'list chains inet; list sets inet'` lists of it: a document each. */
const structure = [{ nftables: chainItems }, { nftables: setItems }]
  .map((d) => JSON.stringify(d))
  .join('\n')

/** What `nft -t -j list ruleset` lists of it. */
const terseRuleset = JSON.stringify({
  nftables: [{ table: { family: 'inet', name: 'palisade' } }, ...chainItems, ...setItems],
})

/** The pid of the `nft -i` session the dataplane keeps for its applies. */
const SESSION_PID = 77

/**
 * The kernel dataplane's tools answered from a script: what matters here is which commands it
 * runs, not what nft does with them (test/kernel covers that). What goes to its session shows
 * among the commands as `nft -i: apply` or `nft -i: ` and the listing; the session answers each
 * request as a success, a listing with the table above.
 */
/** The dataplanes made, closed after each test: their session removes its script directory. */
const made: KernelDataplane[] = []
afterEach(() => {
  for (const dp of made.splice(0)) dp.close()
})

function scripted() {
  const commands: string[] = []
  const signals: (AbortSignal | undefined)[] = []
  let monitor: ProcessHandlers | undefined
  let pid = 100
  const answer = (cmd: string, args: readonly string[]): RunResult => {
    commands.push([cmd, ...args].join(' '))
    pid++
    if (args.includes('list') && args.includes('table'))
      return { pid, code: 1, stdout: '', stderr: 'Error: No such file or directory' }
    if (args[2] === 'list ruleset') return { pid, code: 0, stdout: terseRuleset, stderr: '' }
    if (args[0] === '-t') return { pid, code: 0, stdout: structure, stderr: '' }
    return { pid, code: 0, stdout: '', stderr: '' }
  }
  const run = (cmd: string, args: readonly string[], opts?: RunOptions) => {
    signals.push(opts?.signal)
    return Promise.resolve(answer(cmd, args))
  }
  const dp = new KernelDataplane(
    run,
    'nftables',
    (_cmd, args, on) => {
      if (args[0] === 'monitor') {
        monitor = on
        return { write: () => undefined, kill: () => undefined }
      }
      const write = (text: string) => {
        const file = /^include "(.*)"$/m.exec(text)?.[1] ?? ''
        const script = readFileSync(file, 'utf8')
        const listing = script.startsWith('list ')
        commands.push(listing ? `nft -i: ${script.trimEnd()}` : 'nft -i: apply')
        const mark = text.trimEnd().split('\n').at(-1) ?? ''
        const listed = script.startsWith('list ruleset') ? terseRuleset : structure
        const out = `${listing ? `${listed}\n` : ''}Error: syntax error\n${mark}\n^\n`
        on.stdout(Buffer.from(out))
      }
      return { pid: SESSION_PID, write, kill: () => undefined }
    },
    new FakeClock(),
  )
  made.push(dp)
  const emit = (line: string) => monitor?.stdout(Buffer.from(`${line}\n`))
  return {
    dp,
    commands,
    signals,
    emit,
    stop: undefined as (() => void) | undefined,
  }
}

describe('kernel dataplane: the read after an apply', () => {
  it('takes what the apply read back, once, instead of reading everything again', async () => {
    const { dp, commands } = scripted()
    const plan = await dp.apply(desired, await dp.read({ elements: true }), { modeChanged: true })
    expect(plan.kind).toBe('full')
    expect(commands).toEqual([
      'nft -j list table inet palisade',
      'nft -i: apply',
      'nft -i: list chains inet; list sets inet',
    ])
    const after = await dp.read({ elements: true })
    expect(after.tables[0]?.chains.map((c) => c.name)).toEqual(['input', 'output', 'forward'])
    expect(commands).toHaveLength(3)
    await dp.read({ elements: true })
    expect(commands.slice(3)).toEqual(['nft -j list table inet palisade'])
  })

  it('reads the kernel after another process changed it, or after lost events', async () => {
    for (const event of [
      '# new generation 9 by process 4242 (nft)',
      '# ERROR: We lost some netlink events!',
    ]) {
      const { dp, commands, emit } = scripted()
      dp.watch(() => undefined)
      await dp.apply(desired, await dp.read({ elements: true }), { modeChanged: true })
      emit(event)
      await dp.read({ elements: true })
      expect(commands.at(-1)).toBe('nft -j list table inet palisade')
    }
  })

  it('keeps what the apply read back across its own change events', async () => {
    const { dp, commands, emit } = scripted()
    dp.watch(() => undefined)
    await dp.apply(desired, await dp.read({ elements: true }), { modeChanged: true })
    emit(`# new generation 9 by process ${SESSION_PID} (nft)`)
    await dp.read({ elements: true })
    expect(commands).toHaveLength(3)
  })

  it("knows its session's changes for its own after the session ended", async () => {
    const { dp } = scripted()
    await dp.apply(desired, await dp.read({ elements: true }), { modeChanged: true })
    // A session that ran a large script is ended a second after it answered, and any session
    // when the dataplane closes; the kernel's event for its change may come after that.
    dp.close()
    expect(dp.isOwn({ text: '', pid: SESSION_PID, at: 0 })).toBe(true)
    expect(dp.isOwn({ text: '', pid: 4242, at: 0 })).toBe(false)
  })

  it('verifies a rules repair read without set contents, without them', async () => {
    const { dp, commands } = scripted()
    const table = desired.tables[0]
    if (!table) throw new Error('no table')
    // Another process flushed our input chain; the read that found it left set contents out.
    const tampered: Ruleset = {
      tables: [
        {
          ...table,
          chains: table.chains.map((c) => (c.name === 'input' ? { ...c, rules: [] } : c)),
          sets: table.sets.map((s) => ({ ...s, elements: [] })),
        },
      ],
      ipsets: [],
      elementsOmitted: true,
    }
    expect(await dp.apply(desired, tampered, { modeChanged: false })).toEqual({
      kind: 'rules',
      chains: ['input'],
      tables: ['inet palisade'],
    })
    expect(commands).toEqual(['nft -i: apply', 'nft -i: list chains inet; list sets inet'])
    expect(diff(desired, await dp.read({ elements: false }))).toEqual([])
  })

  it("hands a read's signal to the listing, which the signal ends", async () => {
    const { dp, commands, signals } = scripted()
    const ac = new AbortController()
    await dp.read({ elements: true, signal: ac.signal })
    expect(commands).toEqual(['nft -j list table inet palisade'])
    expect(signals).toEqual([ac.signal])
  })

  it('reads without set contents through its session, or with a signal, by a tool of its own', async () => {
    const { dp, commands, signals } = scripted()
    const read = await dp.read({ elements: false })
    expect(commands).toEqual(['nft -i: list ruleset'])
    expect(read.elementsOmitted).toBe(true)
    expect(read.tables[0]?.chains.map((c) => c.name)).toEqual(['input', 'output', 'forward'])
    const ac = new AbortController()
    await dp.read({ elements: false, signal: ac.signal })
    expect(commands.slice(1)).toEqual(['nft -t -j list ruleset'])
    expect(signals).toEqual([ac.signal])
  })
})

describe('kernel dataplane: the read for a new desired state', () => {
  it('is answered by what the last apply or read found while the monitor saw no other change', async () => {
    const { dp, commands, emit } = scripted()
    dp.watch(() => undefined)
    await dp.apply(desired, await dp.read({ elements: true }), { modeChanged: true })
    emit(`# new generation 9 by process ${SESSION_PID} (nft)`)
    const verified = await dp.read({ elements: true })
    const known = commands.length
    expect(await dp.read({ elements: true, unlessChanged: true })).toBe(verified)
    expect(await dp.read({ elements: true, unlessChanged: true })).toBe(verified)
    expect(commands).toHaveLength(known)
    // Any other read reads, and what it found answers the next one.
    const read = await dp.read({ elements: true })
    expect(commands.slice(known)).toEqual(['nft -j list table inet palisade'])
    expect(await dp.read({ elements: true, unlessChanged: true })).toBe(read)
    expect(commands).toHaveLength(known + 1)
  })

  it('reads after another process changed the kernel, lost events, or without the monitor', async () => {
    const cases: [string, (s: ReturnType<typeof scripted>) => void][] = [
      ['a foreign change', (s) => s.emit('# new generation 9 by process 4242 (nft)')],
      ['lost events', (s) => s.emit('# ERROR: We lost some netlink events!')],
      ['no monitor', () => undefined],
      ['a stopped monitor', (s) => s.stop?.()],
    ]
    for (const [name, after] of cases) {
      const s = scripted()
      if (name !== 'no monitor') s.stop = s.dp.watch(() => undefined).stop
      await s.dp.apply(desired, await s.dp.read({ elements: true }), { modeChanged: true })
      await s.dp.read({ elements: true })
      after(s)
      const known = s.commands.length
      await s.dp.read({ elements: true, unlessChanged: true })
      expect([name, s.commands.slice(known)]).toEqual([name, ['nft -j list table inet palisade']])
    }
  })

  it('does not stand on a read without set contents', async () => {
    const { dp, commands } = scripted()
    dp.watch(() => undefined)
    await dp.read({ elements: true })
    await dp.read({ elements: false })
    const known = commands.length
    await dp.read({ elements: true, unlessChanged: true })
    expect(commands.slice(known)).toEqual(['nft -j list table inet palisade'])
  })
})
