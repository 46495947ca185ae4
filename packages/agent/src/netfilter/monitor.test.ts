import { describe, expect, it } from 'vitest'
import type { MonitorEvent } from '../dataplane.js'
import { batchLines } from '../dataplane.js'
import type { ProcessHandlers, ProcessStarter } from '../exec.js'
import { filterFamiliesChanged, NftMonitor } from './monitor.js'

/** A monitor on a fake `nft monitor` process whose output the test writes. */
function setup() {
  const events: MonitorEvent[] = []
  const started: { cmd: string; args: readonly string[]; on: ProcessHandlers }[] = []
  let kills = 0
  const start: ProcessStarter = (cmd, args, on) => {
    started.push({ cmd, args, on })
    return { write: () => undefined, kill: () => void kills++ }
  }
  let now = 0
  const monitor = new NftMonitor({ start, now: () => now, onEvent: (e) => events.push(e) })
  monitor.start()
  const out = (text: string) => started.at(-1)?.on.stdout(Buffer.from(text))
  return { monitor, events, started, out, kills: () => kills, at: (t: number) => (now = t) }
}

describe('nft monitor', () => {
  it('groups lines into committed transactions, with the process that made each', () => {
    const t = setup()
    expect(t.started.map((s) => [s.cmd, s.args])).toEqual([['nft', ['monitor']]])
    t.at(42)
    t.out('delete rule inet palisade input handle 7\nadd rule inet pal')
    t.out('isade input tcp dport 9999 accept\n\n# new generation 12 by process 4242 (nft)\n')
    t.out('add table inet other\r\n# new generation 13 by process 77 (iptables-nft)\n')
    expect(t.events).toEqual([
      {
        kind: 'change',
        batch: {
          text: 'delete rule inet palisade input handle 7\nadd rule inet palisade input tcp dport 9999 accept\n\n',
          pid: 4242,
          comm: 'nft',
          at: 42,
        },
      },
      {
        kind: 'change',
        batch: { text: 'add table inet other\r\n', pid: 77, comm: 'iptables-nft', at: 42 },
      },
    ])
  })

  it('says when events were lost, dropping the partial transaction', () => {
    const t = setup()
    t.out('delete rule inet palisade input handle 7\n# ERROR: We lost some netlink events!\n')
    t.started[0]?.on.stderr(Buffer.from('netlink: lost some netlink events\n'))
    t.out('# new generation 3 by process 9 (nft)\n')
    expect(t.events).toEqual([
      { kind: 'lost' },
      { kind: 'lost' },
      { kind: 'change', batch: { text: '', pid: 9, comm: 'nft', at: 0 } },
    ])
  })

  it('finds the end of a transaction in whatever pieces the output comes', () => {
    const text =
      '# new generation 1 by process 5 (nft)\n' +
      'add element inet palisade s { 198.18.0.1 }\n'.repeat(3) +
      '# new generation 2 by process 6 (nft)\n# Warning: something\n' +
      'delete rule inet palisade input handle 7\n# new generation 3 by process 7 (iptables-nft)\n'
    const whole = setup()
    whole.out(text)
    expect(whole.events.map((e) => e.kind === 'change' && [e.batch.pid, e.batch.text])).toEqual([
      [5, ''],
      [6, 'add element inet palisade s { 198.18.0.1 }\n'.repeat(3)],
      [7, '# Warning: something\ndelete rule inet palisade input handle 7\n'],
    ])
    // Split at every position: a line, or the `#` that begins one, cut in two.
    for (let cut = 1; cut < text.length; cut++) {
      const t = setup()
      t.out(text.slice(0, cut))
      t.out(text.slice(cut))
      expect(t.events, `cut at ${cut}`).toEqual(whole.events)
    }
  })

  it('puts together a character split between two chunks', () => {
    const t = setup()
    const line = Buffer.from(
      'add rule inet x c comment "größe"\n# new generation 5 by process 3 (nft)\n',
    )
    const cut = line.indexOf(Buffer.from('ö')) + 1
    t.started[0]?.on.stdout(line.subarray(0, cut))
    t.started[0]?.on.stdout(line.subarray(cut))
    expect(t.events).toEqual([
      {
        kind: 'change',
        batch: { text: 'add rule inet x c comment "größe"\n', pid: 3, comm: 'nft', at: 0 },
      },
    ])
  })

  it('takes only its own lines for the end of a transaction or a loss', () => {
    const t = setup()
    t.out('add rule inet x c comment "# new generation 9 by process 1 (nft)"\n')
    t.out('add rule inet x c comment "lost some netlink events"\n')
    t.out('# new generation 4 by process 2 (nft)\n')
    expect(t.events).toEqual([
      {
        kind: 'change',
        batch: {
          text:
            'add rule inet x c comment "# new generation 9 by process 1 (nft)"\n' +
            'add rule inet x c comment "lost some netlink events"\n',
          pid: 2,
          comm: 'nft',
          at: 0,
        },
      },
    ])
  })

  it('reports its own end, but not when it was stopped', () => {
    const t = setup()
    t.started[0]?.on.error(new Error('spawn nft ENOENT'))
    t.started[0]?.on.close(1, null)
    expect(t.events).toEqual([
      { kind: 'exited', reason: 'cannot run nft monitor: spawn nft ENOENT' },
      { kind: 'exited', reason: 'nft monitor exited (code 1)' },
    ])
    t.monitor.start()
    t.monitor.stop()
    expect(t.kills()).toBe(1)
    t.started[1]?.on.close(null, 'SIGTERM')
    expect(t.events).toHaveLength(2)
  })
})

describe('the iptables filter tables a change touched', () => {
  // Lines as nft 1.0.6 monitors iptables-nft's and others' commands.
  const cases: [string, string[], string[] | undefined][] = [
    [
      'a flush of our chain',
      [
        'delete rule ip filter PALISADE-INPUT handle 2',
        'delete rule ip filter PALISADE-INPUT handle 3',
      ],
      ['ip'],
    ],
    ['a hook deleted', ['delete rule ip filter INPUT handle 5'], ['ip']],
    ['a rule inserted', ['insert rule ip filter INPUT counter packets 0 bytes 0 jump X'], ['ip']],
    ['an IPv6 chain made', ['add table ip6 filter', 'create chain ip6 filter Y'], ['ip6']],
    ['both families', ['add rule ip filter A accept', 'delete chain ip6 filter B'], ['ip', 'ip6']],
    ['the table deleted', ['delete table ip filter'], ['ip']],
    [
      'a base chain made',
      ['add chain ip filter INPUT { type filter hook input priority filter; policy accept; }'],
      ['ip'],
    ],
    ['another table of the family', ['add table ip nat', 'create chain ip nat Z'], undefined],
    ['a table named like it elsewhere', ['add rule inet filter input accept'], undefined],
    ['a longer name', ['add rule ip filterx input accept'], undefined],
    ['a set in the filter table', ['add set ip filter s { type ipv4_addr; }'], undefined],
    [
      'one line of something else',
      ['delete rule ip filter INPUT handle 5', 'add table inet palisade'],
      undefined,
    ],
    ['no lines', [], undefined],
  ]
  it.each(cases)('%s', (_name, lines, want) => {
    const got = filterFamiliesChanged({ text: lines.join('\n'), pid: 1, at: 0 })
    expect(got && [...got].sort()).toEqual(want)
  })
})

describe("a change's lines", () => {
  const cases: [string, string, string[]][] = [
    ['none', '', []],
    ['one, unended', 'add table ip x', ['add table ip x']],
    [
      'blank ones left out',
      '\nadd table ip x\n\n  \ndelete table ip y\n',
      ['add table ip x', 'delete table ip y'],
    ],
    [
      'carriage returns taken off',
      'add table ip x\r\ndelete table ip y\r',
      ['add table ip x', 'delete table ip y'],
    ],
  ]
  it.each(cases)('%s', (_name, text, want) => {
    expect([...batchLines({ text, at: 0 })]).toEqual(want)
  })
})
