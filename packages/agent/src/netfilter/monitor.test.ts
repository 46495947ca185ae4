import { describe, expect, it } from 'vitest'
import type { MonitorEvent } from '../dataplane.js'
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
          lines: [
            'delete rule inet palisade input handle 7',
            'add rule inet palisade input tcp dport 9999 accept',
          ],
          pid: 4242,
          comm: 'nft',
          at: 42,
        },
      },
      {
        kind: 'change',
        batch: { lines: ['add table inet other'], pid: 77, comm: 'iptables-nft', at: 42 },
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
      { kind: 'change', batch: { lines: [], pid: 9, comm: 'nft', at: 0 } },
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
    const got = filterFamiliesChanged({ lines, pid: 1, at: 0 })
    expect(got && [...got].sort()).toEqual(want)
  })
})
