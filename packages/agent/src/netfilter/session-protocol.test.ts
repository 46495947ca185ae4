import { describe, expect, it } from 'vitest'
import { IPSET_SESSION, NFT_SESSION, sessionFor } from './session-protocol.js'

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
    ['a chain', 'nft', ['-f', '-'], 'add chain inet palisade input\n', undefined],
    ['another table', 'nft', ['-f', '-'], NFT_ADD.replace('palisade', 'other'), undefined],
    [
      'two commands in one line',
      'nft',
      ['-f', '-'],
      NFT_ADD.replace('}', '}; flush ruleset'),
      undefined,
    ],
    ['a whole table', 'nft', ['-f', '-'], 'table inet palisade {\n}\n', undefined],
    ['nft with other arguments', 'nft', ['-c', '-f', '-'], NFT_ADD, undefined],
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
    ['only the counts', 'ipset', ['restore'], 'list -t\n', undefined],
    ['an iptables commit', 'iptables-nft-restore', ['--noflush'], NFT_ADD, undefined],
    ['nothing', 'nft', ['-f', '-'], '', undefined],
    ['no final newline', 'nft', ['-f', '-'], NFT_ADD.trimEnd(), undefined],
    ['too large', 'nft', ['-f', '-'], NFT_ADD.repeat(600), undefined],
  ])('%s', (_, cmd, args, stdin, tool) => {
    expect(sessionFor(cmd, args, stdin)?.name).toBe(tool)
  })
})

describe('NFT_SESSION', () => {
  const markError = (mark: string) =>
    `Error: syntax error, unexpected newline, expecting string\n${mark}\n${' '.repeat(mark.length)}^\n`

  it('sends the script as one line (one transaction), then the mark', () => {
    expect(NFT_SESSION.request(NFT_BOTH, 'm-1')).toBe(
      `${NFT_BOTH.trimEnd().split('\n').join('; ')}\nm-1\n`,
    )
  })

  it('answers once the mark and its caret line came, with what follows kept', () => {
    const all = `${markError('m-1')}Error: element`
    expect(NFT_SESSION.answer(all.slice(0, 60), 'm-1')).toBeUndefined()
    expect(NFT_SESSION.answer(markError('m-1').slice(0, -1), 'm-1')).toBeUndefined()
    expect(NFT_SESSION.answer(all, 'm-1')).toEqual({
      answer: { code: 0, stdout: '', stderr: '' },
      rest: 'Error: element',
    })
  })

  it('answers a failure with the errors before the mark', () => {
    const errors =
      'Error: element does not exist\ndelete element inet palisade s { 1.2.3.4 }\n   ^^^^\n'
    expect(NFT_SESSION.answer(errors + markError('m-2'), 'm-2')).toEqual({
      answer: { code: 1, stdout: '', stderr: errors },
      rest: '',
    })
  })

  it('does not take another mark for its own', () => {
    expect(NFT_SESSION.answer(markError('m-1'), 'm-12')).toBeUndefined()
  })
})

describe('IPSET_SESSION', () => {
  const COUNTS =
    'Name: palisade-ab12-v4\nType: hash:net\nRevision: 7\nHeader: family inet hashsize 1024\n' +
    'Size in memory: 1234\nReferences: 1\nNumber of entries: 3\n'
  const VERSION = 'ipset v7.17, protocol version: 7\n'

  it('ends the script with version, which marks the end of the answer', () => {
    expect(IPSET_SESSION.request(IPSET_DELTA, 'unused')).toBe(`${IPSET_DELTA}version\n`)
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
