/**
 * What a failed firewall tool said, in words that are safe to send to the policy server.
 *
 * A tool's stderr can hold anything its input made it read: `nft -f` follows `include`
 * statements and prints the lines of the file it could not parse. So stderr never leaves the
 * host verbatim: it is classified into a kind, and the only detail kept is which lines of our
 * own input (the script on stdin) the tool named.
 */

export type ToolFailureKind =
  | 'syntax refused'
  | 'lock busy'
  | 'missing kernel support'
  | 'permission denied'
  | 'timed out'
  | 'failed'

export interface ToolFailure {
  readonly kind: ToolFailureKind
  /** Lines of our own input the tool named (at most `MAX_LINES`, in order, no repeats). */
  readonly inputLines: readonly number[]
}

const MAX_LINES = 5

/** The first pattern that matches wins: a timeout and a held lock explain a syntax error too. */
const KINDS: readonly (readonly [ToolFailureKind, RegExp])[] = [
  ['timed out', /killed by SIGKILL after timeout/],
  ['lock busy', /xtables lock|holding the lock|Resource busy|Device or resource busy/i],
  ['permission denied', /Operation not permitted|Permission denied|must be root/i],
  [
    'missing kernel support',
    /not supported|do you need to insmod|Table does not exist|Could not fetch rule set generation|No such file or directory|Unknown (?:set )?type|Kernel error received|Couldn't load (?:match|target)|Module .* not found/i,
  ],
  [
    'syntax refused',
    /syntax error|Error occurred at line|line \d+ failed|Error in line|invalid|out of range|unexpected|Bad argument|unknown option|Could not process rule|Try `/i,
  ],
]

/**
 * Where the tools name a line of their stdin: nft's `/dev/stdin:N:`, iptables-restore's
 * `Error occurred at line: N` and `line N failed`, ipset's `Error in line N:`. Only these forms
 * count, so a number printed from an included file is never taken for one of ours.
 */
const INPUT_LINE =
  /(?:^|\s)\/dev\/stdin:(\d{1,9}):|^Error occurred at line: (\d{1,9})$|^\S+: line (\d{1,9}) failed$|: Error in line (\d{1,9}):/gm

/** Classifies a tool's stderr; pure. */
export function classifyToolFailure(stderr: string): ToolFailure {
  const kind = KINDS.find(([, re]) => re.test(stderr))?.[0] ?? 'failed'
  const inputLines: number[] = []
  for (const m of stderr.matchAll(INPUT_LINE)) {
    const n = Number(m[1] ?? m[2] ?? m[3] ?? m[4])
    if (!inputLines.includes(n)) inputLines.push(n)
    if (inputLines.length === MAX_LINES) break
  }
  return { kind, inputLines }
}

/** The words for a failure: the kind and, if any, the lines of our input. */
export function describeToolFailure(f: ToolFailure): string {
  if (f.inputLines.length === 0) return f.kind
  const s = f.inputLines.length > 1 ? 's' : ''
  return `${f.kind} (our input line${s} ${f.inputLines.join(', ')})`
}
