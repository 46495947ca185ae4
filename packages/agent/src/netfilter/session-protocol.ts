import { NFT_TABLE } from '@palisade/firewall'

/**
 * How a change to set elements is made by a tool kept running, reading commands on stdin,
 * instead of a tool started for it: starting `nft` or `ipset` costs more than the change (and
 * `nft`, exiting after an element delete, waits for the kernel to release it). Pure: what to
 * start, what to write and how to read the answer; tool-session.ts runs it.
 */
export interface SessionTool {
  readonly name: 'nft' | 'ipset'
  readonly cmd: string
  readonly args: readonly string[]
  /** The stream its answers come on (its errors among them). */
  readonly stream: 'stdout' | 'stderr'
  /** What to write for `script`, ending with what makes it mark the end of its answer. */
  request(script: string, mark: string): string
  /** The answer to the request marked `mark`, once `text` holds all of it, and what follows. */
  answer(
    text: string,
    mark: string,
  ): { readonly answer: SessionAnswer; readonly rest: string } | undefined
}

/** What a one-shot run of the tool would have said: its exit code and output. */
export interface SessionAnswer {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** The largest script sent to a session (nft 1.0.6 reads a line of 42 KB whole, tested). */
const MAX_SCRIPT = 32 * 1024

const NFT_ELEMENTS = new RegExp(
  `^(add|delete) element inet ${NFT_TABLE} [\\w-]+ \\{ [^{};\\n]* \\}$`,
)
const IPSET_ELEMENT = /^(add|del) [\w.-]+ [\w.:/-]+ -exist$/

/**
 * `nft -i` runs each line it reads as one transaction, as `nft -f` runs a file: the script's
 * lines (element changes only, so none holds a `;`) are joined into one. It prints nothing on
 * success and its errors on stderr (unbuffered); a line that is not a command (the mark) gets a
 * syntax error that names it, after the errors of the line before.
 */
export const NFT_SESSION: SessionTool = {
  name: 'nft',
  cmd: 'nft',
  args: ['-i'],
  stream: 'stderr',
  request: (script, mark) => `${script.trimEnd().split('\n').join('; ')}\n${mark}\n`,
  answer(text, mark) {
    const at = lineAt(text, mark)
    if (at < 0) return undefined
    // After the mark's line comes the caret line under it.
    const caretEnd = text.indexOf('\n', at + mark.length + 1)
    if (caretEnd < 0) return undefined
    // Before it, the mark's own error line.
    const before = text.slice(0, at)
    const errors = before.slice(0, before.lastIndexOf('\n', before.length - 2) + 1)
    return {
      answer: { code: errors.trim() === '' ? 0 : 1, stdout: '', stderr: errors },
      rest: text.slice(caretEnd + 1),
    }
  },
}

const PROMPT = /^(ipset> )+/
const VERSION = /^(ipset> )*ipset v[\d.]+, protocol version: \d+$/m
const ERROR = /^ipset v[\d.]+: /

/**
 * `ipset -` (interactive) runs each line as `ipset restore` would, and goes on after an error.
 * Its stdout is a pipe, so it is made line-buffered (stdbuf) and its errors sent there too, in
 * order; each line read is prompted (`ipset> `, no newline). `version` marks the end.
 */
export const IPSET_SESSION: SessionTool = {
  name: 'ipset',
  cmd: 'sh',
  args: ['-c', 'exec stdbuf -oL ipset - 2>&1'],
  stream: 'stdout',
  request: (script) => `${script}version\n`,
  answer(text) {
    const m = VERSION.exec(text)
    if (!m) return undefined
    const lines = text
      .slice(0, m.index)
      .split('\n')
      .map((l) => l.replace(PROMPT, ''))
      .filter((l) => l !== '')
    const errors = lines.filter((l) => ERROR.test(l))
    const out = lines.filter((l) => !ERROR.test(l))
    return {
      answer: {
        code: errors.length > 0 ? 1 : 0,
        stdout: out.map((l) => `${l}\n`).join(''),
        stderr: errors.map((l) => `${l}\n`).join(''),
      },
      rest: text.slice(m.index + m[0].length + 1),
    }
  },
}

/**
 * The session that can run what `cmd args` would read on stdin, if any: a small change to set
 * elements and nothing else (rules and whole sets always go to a tool started for them).
 */
export function sessionFor(
  cmd: string,
  args: readonly string[],
  stdin: string,
): SessionTool | undefined {
  if (stdin === '' || stdin.length > MAX_SCRIPT || !stdin.endsWith('\n')) return undefined
  const lines = stdin.slice(0, -1).split('\n')
  if (cmd === 'nft' && args.join(' ') === '-f -' && lines.every((l) => NFT_ELEMENTS.test(l)))
    return NFT_SESSION
  if (cmd !== 'ipset' || args.join(' ') !== 'restore' || lines.pop() !== 'list -t') return undefined
  return lines.length > 0 && lines.every((l) => IPSET_ELEMENT.test(l)) ? IPSET_SESSION : undefined
}

/** Where `line` starts as a whole line of `text`, or -1. */
function lineAt(text: string, line: string): number {
  if (text.startsWith(`${line}\n`)) return 0
  const at = text.indexOf(`\n${line}\n`)
  return at < 0 ? -1 : at + 1
}
