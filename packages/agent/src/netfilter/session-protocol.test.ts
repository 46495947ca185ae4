import { describe, expect, it } from 'vitest'
import { filterDigestTool, IPSET_SESSION, NFT_SESSION, sessionFor } from './session-protocol.js'

const NFT_ADD = 'add element inet palisade peers_ab12_v4 { 203.0.113.7 }\n'
const NFT_BOTH =
  'delete element inet palisade peers_ab12_v4 { 203.0.113.9 }\n' +
  'add element inet palisade peers_ab12_v6 { fd00::7, fd00::9 }\n'
const IPSET_DELTA =
  'del palisade-ab12-v4 203.0.113.9/32 -exist\nadd palisade-ab12-v6 fd00::7/128 -exist\nlist -t\n'

describe('sessionFor', () => {
  it.each([
    ['nft element changes', 'nft', ['-f', '-'], NFT_ADD, 'nft'],
    ['nft deletes and adds', 'nft', ['-f', '-'], NFT_BOTH, 'nft'],
    ['ipset element changes with counts', 'ipset', ['restore'], IPSET_DELTA, 'ipset'],
    ['a chain', 'nft', ['-f', '-'], 'add chain inet palisade input\n', 'nft'],
    ['a whole table', 'nft', ['-f', '-'], 'table inet palisade {\n}\n', 'nft'],
    ['a script of 1 MB', 'nft', ['-f', '-'], NFT_ADD.repeat(18_000), 'nft'],
    ['a script of 16 MB', 'nft', ['-f', '-'], NFT_ADD.repeat(16 * 18_000), 'nft'],
    ['a script over 16 MB', 'nft', ['-f', '-'], NFT_ADD.repeat(16 * 19_000), undefined],
    ['a terse JSON listing', 'nft', ['-t', '-j', 'list chains inet; list sets inet'], '', 'nft'],
    ['nft with other arguments', 'nft', ['-c', '-f', '-'], NFT_ADD, undefined],
    ['a listing with elements', 'nft', ['-j', 'list', 'table', 'inet', 'palisade'], '', undefined],
    ['a terse listing in words', 'nft', ['-t', 'list', 'ruleset'], '', undefined],
    ['a terse JSON change', 'nft', ['-t', '-j', 'flush ruleset'], '', undefined],
    ['a listing and a line', 'nft', ['-t', '-j', 'list sets\nflush ruleset'], '', undefined],
    ['a listing with input', 'nft', ['-t', '-j', 'list sets'], NFT_ADD, undefined],
    [
      'ipset without the counts',
      'ipset',
      ['restore'],
      'add palisade-ab12-v4 1.2.3.4 -exist\n',
      undefined,
    ],
    [
      'ipset creating a set',
      'ipset',
      ['restore'],
      'create palisade-x hash:net\nlist -t\n',
      undefined,
    ],
    ['ipset swapping sets', 'ipset', ['restore'], 'swap a b\nlist -t\n', undefined],
    ['only the counts', 'ipset', ['restore'], 'list -t\n', 'ipset'],
    ['an iptables commit', 'iptables-nft-restore', ['--noflush'], NFT_ADD, undefined],
    ['nothing', 'nft', ['-f', '-'], '', undefined],
    ['no final newline', 'nft', ['-f', '-'], NFT_ADD.trimEnd(), undefined],
    ['too large for ipset', 'ipset', ['restore'], IPSET_DELTA.repeat(400), undefined],
  ])('%s', (_, cmd, args, stdin, tool) => {
    expect(sessionFor(cmd, args, stdin)?.tool.name).toBe(tool)
  })

  it('starts nft again after a script of over 1 MB, which it would keep the memory of', () => {
    expect(sessionFor('nft', ['-f', '-'], NFT_ADD.repeat(18_000))?.restartAfter).toBeUndefined()
    expect(sessionFor('nft', ['-f', '-'], NFT_ADD.repeat(19_000))?.restartAfter).toBe(true)
  })

  it('runs what nft -f - reads, and a listing as a line of its own', () => {
    expect(sessionFor('nft', ['-f', '-'], NFT_BOTH)?.script).toBe(NFT_BOTH)
    expect(sessionFor('nft', ['-t', '-j', 'list chains inet; list sets inet'], '')?.script).toBe(
      'list chains inet; list sets inet\n',
    )
    expect(sessionFor('ipset', ['restore'], IPSET_DELTA)?.script).toBe(IPSET_DELTA)
  })
})

describe('NFT_SESSION', () => {
  const markError = (mark: string) =>
    `Error: syntax error, unexpected newline, expecting string\n${mark}\n${' '.repeat(mark.length)}^\n`

  const FILE = '/tmp/palisade-session-x1/nft.script'

  it('names the file the script is in (one transaction), then the mark', () => {
    expect(NFT_SESSION.viaFile).toBe(true)
    expect(NFT_SESSION.request(NFT_BOTH, 'm-1', FILE)).toBe(`include "${FILE}"\nm-1\n`)
    // Its answer ends with the mark's line, never a longer mark's.
    expect(markError('m-1')).toContain(NFT_SESSION.ending('m-1'))
    expect(markError('m-12')).not.toContain(NFT_SESSION.ending('m-1'))
  })

  it.each([undefined, '', 'tmp/x', '/tmp/a"b', '/tmp/a\nflush ruleset', '/tmp/*.nft', '/tmp/[ab]'])(
    'refuses to name %j, which nft would not read back as that one file',
    (file) => {
      expect(() => NFT_SESSION.request(NFT_ADD, 'm-1', file)).toThrow('a plain absolute path')
    },
  )

  it('answers once the mark and its caret line came, with what follows kept', () => {
    const all = `${markError('m-1')}Error: element`
    expect(NFT_SESSION.answer(all.slice(0, 60), 'm-1', FILE)).toBeUndefined()
    expect(NFT_SESSION.answer(markError('m-1').slice(0, -1), 'm-1', FILE)).toBeUndefined()
    expect(NFT_SESSION.answer(all, 'm-1', FILE)).toEqual({
      answer: { code: 0, stdout: '', stderr: '' },
      rest: 'Error: element',
    })
  })

  it('answers a listing with its JSON documents, a line each', () => {
    const chains = '{"nftables": [{"metainfo": {}}, {"chain": {"name": "input"}}]}\n'
    const sets = '{"nftables": [{"metainfo": {}}, {"set": {"name": "peers_ab12_v4"}}]}\n'
    expect(NFT_SESSION.answer(chains + sets + markError('m-3'), 'm-3', FILE)).toEqual({
      answer: { code: 0, stdout: chains + sets, stderr: '' },
      rest: '',
    })
  })

  it('answers a warning as a success, as nft -f - exits 0 after one', () => {
    const warning = `${FILE}:3:1-20: Warning: table ip filter is managed by iptables-nft\n`
    expect(NFT_SESSION.answer(warning + markError('m-4'), 'm-4', FILE)).toEqual({
      answer: {
        code: 0,
        stdout: '',
        stderr: '/dev/stdin:3:1-20: Warning: table ip filter is managed by iptables-nft\n',
      },
      rest: '',
    })
  })

  it('never names the file, wherever nft printed it', () => {
    const errors = `Error: syntax error, unexpected end of file\ninclude "${FILE}"\n ^\n`
    const answer = NFT_SESSION.answer(errors + markError('m-5'), 'm-5', FILE)?.answer
    expect(answer?.code).toBe(1)
    expect(answer?.stderr).not.toContain('palisade-session')
  })

  it('answers a failure with the errors before the mark, worded as nft -f - words them', () => {
    // As nft 1.0.6 prints the failure of an included file (captured from the kernel).
    const errors =
      'In file included from <cmdline>:1:1-47:\n' +
      `${FILE}:51:52-63: Error: Could not process rule: No such file or directory\n` +
      'delete element inet palisade s { 203.0.113.99 }\n' +
      '                                 ^^^^^^^^^^^^\n'
    expect(NFT_SESSION.answer(errors + markError('m-2'), 'm-2', FILE)).toEqual({
      answer: {
        code: 1,
        stdout: '',
        stderr:
          '/dev/stdin:51:52-63: Error: Could not process rule: No such file or directory\n' +
          'delete element inet palisade s { 203.0.113.99 }\n' +
          '                                 ^^^^^^^^^^^^\n',
      },
      rest: '',
    })
  })

  it('does not take another mark for its own', () => {
    expect(NFT_SESSION.answer(markError('m-1'), 'm-12', FILE)).toBeUndefined()
  })
})

describe('IPSET_SESSION', () => {
  const COUNTS =
    'Name: palisade-ab12-v4\nType: hash:net\nRevision: 7\nHeader: family inet hashsize 1024\n' +
    'Size in memory: 1234\nReferences: 1\nNumber of entries: 3\n'
  const VERSION = 'ipset v7.17, protocol version: 7\n'

  it('ends the script with version, which marks the end of the answer', () => {
    expect(IPSET_SESSION.request(IPSET_DELTA, 'unused')).toBe(`${IPSET_DELTA}version\n`)
    expect(VERSION).toContain(IPSET_SESSION.ending('unused'))
  })

  it('answers with the listing, its prompts taken out, once the version came', () => {
    const text = `ipset> ipset> ipset> ${COUNTS}ipset> ${VERSION}ipset> `
    expect(IPSET_SESSION.answer(text.slice(0, 100), '')).toBeUndefined()
    expect(IPSET_SESSION.answer(text, '')).toEqual({
      answer: { code: 0, stdout: COUNTS, stderr: '' },
      rest: 'ipset> ',
    })
  })

  it('answers a failure with the error lines (written before the prompt that preceded them)', () => {
    const error = "ipset v7.17: Element cannot be added to the set: it's already added\n"
    const text = `${error}ipset> ipset> ${COUNTS}ipset> ${VERSION}`
    expect(IPSET_SESSION.answer(text, '')).toEqual({
      answer: { code: 1, stdout: COUNTS, stderr: error },
      rest: '',
    })
  })
})

describe('filterDigestTool', () => {
  it("calls getsockopt by the architecture's number, where it is known", () => {
    expect(filterDigestTool('x64')?.args.at(-1)).toBe('55')
    expect(filterDigestTool('arm64')?.args.at(-1)).toBe('209')
    expect(filterDigestTool('ia32')).toBeUndefined()
    expect(filterDigestTool('s390x')).toBeUndefined()
  })

  it('asks with the mark alone, and answers with what came before it', () => {
    const tool = filterDigestTool('x64')
    if (!tool) throw new Error('no tool')
    expect(tool.request('ignored', 'm-1')).toBe('m-1\n')
    expect(tool.answer('4\nm-1\n', 'm-1')).toEqual({
      answer: { code: 0, stdout: '4\n', stderr: '' },
      rest: '',
    })
    expect(tool.answer('4\nm-', 'm-1')).toBeUndefined()
  })
})
