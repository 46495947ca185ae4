import { describe, expect, it } from 'vitest'
import { CommandError } from './exec.js'
import type { ToolFailure } from './tool-failure.js'
import { classifyToolFailure, describeToolFailure } from './tool-failure.js'

/** What nft 1.0.6 printed for a script whose chain held `include "/etc/shadow"`. */
const SHADOW_INCLUDE = [
  'In file included from /dev/stdin:3:3-24:',
  '/etc/shadow:1:5-5: Error: syntax error, unexpected colon',
  'root:$6$Zk1eSecretHash$abcdefgh:20228:0:99999:7:::',
  '    ^',
  'In file included from /dev/stdin:3:3-24:',
  '/etc/shadow:2:7-7: Error: syntax error, unexpected colon',
  'daemon:*:20228:0:99999:7:::',
  '      ^',
].join('\n')

const cases: readonly (readonly [string, string, ToolFailure])[] = [
  ['nft include of another file', SHADOW_INCLUDE, { kind: 'syntax refused', inputLines: [3] }],
  [
    'nft syntax error',
    "/dev/stdin:2:85-85: Error: syntax error, unexpected '}'\n chain c { x }\n   ^\n/dev/stdin:4:1-1: Error: syntax error, unexpected end of file\n}\n^",
    { kind: 'syntax refused', inputLines: [2, 4] },
  ],
  [
    'iptables-restore bad port',
    "iptables-restore v1.8.9 (nf_tables): invalid port/service `99999' specified\nError occurred at line: 2\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.",
    { kind: 'syntax refused', inputLines: [2] },
  ],
  [
    'iptables-restore line failed',
    'iptables-restore: line 7 failed',
    { kind: 'syntax refused', inputLines: [7] },
  ],
  [
    'ipset restore',
    "ipset v7.17: Error in line 2: Syntax error: '99' is out of range 0-32",
    { kind: 'syntax refused', inputLines: [2] },
  ],
  [
    'xtables lock',
    'Another app is currently holding the xtables lock; still 1s 0us time ahead to have a chance to grab the lock...\nAnother app is currently holding the xtables lock. Stopped waiting after 2s.',
    { kind: 'lock busy', inputLines: [] },
  ],
  ['nft busy', 'netlink: Error: Device or resource busy', { kind: 'lock busy', inputLines: [] }],
  [
    'no permission',
    'Error: Could not process rule: Operation not permitted',
    { kind: 'permission denied', inputLines: [] },
  ],
  [
    'missing kernel support',
    "iptables v1.8.9 (legacy): can't initialize iptables table `filter': Table does not exist (do you need to insmod?)",
    { kind: 'missing kernel support', inputLines: [] },
  ],
  [
    'nft feature missing',
    '/dev/stdin:5:3-40: Error: Could not process rule: Operation not supported',
    { kind: 'missing kernel support', inputLines: [5] },
  ],
  [
    'timeout',
    'partial output\nkilled by SIGKILL after timeout',
    { kind: 'timed out', inputLines: [] },
  ],
  ['nothing said', '', { kind: 'failed', inputLines: [] }],
  ['something else', 'the disk caught fire', { kind: 'failed', inputLines: [] }],
  [
    'many lines: at most five',
    [1, 2, 2, 3, 4, 5, 6, 7].map((n) => `/dev/stdin:${n}:1-1: Error: syntax error`).join('\n'),
    { kind: 'syntax refused', inputLines: [1, 2, 3, 4, 5] },
  ],
]

describe('classifyToolFailure', () => {
  it.each(cases)('%s', (_name, stderr, want) => {
    expect(classifyToolFailure(stderr)).toEqual(want)
  })

  it('describes a failure by its kind and our input lines only', () => {
    expect(describeToolFailure({ kind: 'lock busy', inputLines: [] })).toBe('lock busy')
    expect(describeToolFailure({ kind: 'syntax refused', inputLines: [3] })).toBe(
      'syntax refused (our input line 3)',
    )
    expect(describeToolFailure({ kind: 'syntax refused', inputLines: [2, 4] })).toBe(
      'syntax refused (our input lines 2, 4)',
    )
  })

  it('lets nothing of an included file into a command error', () => {
    const e = new CommandError('nft -f -', { code: 1, stdout: '', stderr: SHADOW_INCLUDE })
    expect(e.message).toBe('nft -f - failed (exit code 1): syntax refused (our input line 3)')
    for (const leak of ['shadow', 'root', 'daemon', 'Zk1e', '20228', '99999', 'colon'])
      expect(e.message).not.toContain(leak)
  })
})
