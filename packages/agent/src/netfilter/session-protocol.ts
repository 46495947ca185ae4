/**
 * How an apply is made by a tool kept running, reading commands on stdin, instead of a tool
 * started for it: starting `nft` or `ipset` costs more than a small change (and `nft`, exiting
 * after an element delete, waits for the kernel to release it), and as much as the whole apply
 * of a table of 1,000 peers. Pure: what to start, what to write and how to read the answer;
 * tool-session.ts runs it.
 */
export interface SessionTool {
  readonly name: 'nft' | 'ipset' | 'sh' | 'perl'
  readonly cmd: string
  readonly args: readonly string[]
  /** The stream its answers come on (its errors among them). */
  readonly stream: 'stdout' | 'stderr'
  /**
   * Whether the tool reads the script from a file it is told of (`file`, written by the
   * session before the request) rather than from the request itself.
   */
  readonly viaFile: boolean
  /** What to write for `script`, ending with what makes it mark the end of its answer. */
  request(script: string, mark: string, file?: string): string
  /** What the answer to the request marked `mark` ends with (at most 64 characters). */
  ending(mark: string): string
  /** The answer to the request marked `mark`, once `text` holds all of it, and what follows. */
  answer(
    text: string,
    mark: string,
    file?: string,
  ): { readonly answer: SessionAnswer; readonly rest: string } | undefined
}

/** What a one-shot run of the tool would have said: its exit code and output. */
export interface SessionAnswer {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** The largest script sent to the ipset session, whose answer prompts once per line. */
const MAX_IPSET_SCRIPT = 32 * 1024

/**
 * The largest script sent to the nft session (about a million addresses): past it, the tool's
 * own start is a small part of the apply. (At 100,000 addresses, 1.6 MB, it is still 40 ms of
 * 400.)
 */
const MAX_NFT_SCRIPT = 16 * 1024 * 1024

/**
 * The largest script after which the nft session keeps running (about 70,000 addresses): nft
 * keeps the memory a script took for as long as it runs (45 MB after 100,000 addresses, 5 MB
 * before), so after a larger one it is started again.
 */
const KEPT_NFT_SCRIPT = 1024 * 1024

const IPSET_ELEMENT = /^(add|del) [\w.-]+ [\w.:/-]+ -exist$/

/**
 * `nft -i` runs each line it reads as one transaction. The script goes in a file, and the line
 * `include "FILE"` runs it as `nft -f FILE` would, one transaction whatever its size (nft 1.0.6
 * reads a line of stdin whole only up to 42 KB). It lists as `nft -t -j` does (JSON, one line a
 * listing, set elements left out), line-buffered (stdbuf) with its errors in the same stream,
 * in order; it prints nothing for a change made. A line that is not a command (the mark) gets a
 * syntax error that names it, after what the line before printed. The errors are given as
 * `nft -f -` words them: the file's lines as lines of /dev/stdin, which is what tool-failure.ts
 * reports of them.
 */
export const NFT_SESSION: SessionTool = {
  name: 'nft',
  cmd: 'sh',
  args: ['-c', 'exec stdbuf -oL nft -t -j -i 2>&1'],
  stream: 'stdout',
  viaFile: true,
  request: (_script, mark, file) => `include ${nftString(file)}\n${mark}\n`,
  ending: (mark) => `\n${mark}\n`,
  answer(text, mark, file) {
    const at = lineAt(text, mark)
    if (at < 0) return undefined
    // After the mark's line comes the caret line under it.
    const caretEnd = text.indexOf('\n', at + mark.length + 1)
    if (caretEnd < 0) return undefined
    // Before it, the mark's own error line; before that, what the script printed: its listings
    // (a JSON document a line) and its errors.
    const before = text.slice(0, at)
    const printed = before.slice(0, before.lastIndexOf('\n', before.length - 2) + 1).split('\n')
    printed.pop()
    const listed = (l: string) => l.startsWith('{"nftables":')
    const said = printed
      .filter((l) => l !== '' && !listed(l) && !l.startsWith('In file included from <cmdline>:'))
      .map((l) => (file === undefined ? l : l.replaceAll(file, '/dev/stdin')))
    const lines = (ls: string[]) => ls.map((l) => `${l}\n`).join('')
    return {
      answer: {
        // nft words every failure `Error: ...` (its warnings `Warning: ...`, and exit 0).
        code: said.some((l) => /(^|: )Error: /.test(l)) ? 1 : 0,
        stdout: lines(printed.filter(listed)),
        stderr: lines(said),
      },
      rest: text.slice(caretEnd + 1),
    }
  },
}

/** A path as an nft string: one nft reads back unchanged (no quote, no line break, no glob). */
function nftString(path: string | undefined): string {
  if (path === undefined || !/^\/[\w./ -]+$/.test(path))
    throw new Error(`cannot name ${JSON.stringify(path)} to nft: a plain absolute path is needed`)
  return `"${path}"`
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
  viaFile: false,
  request: (script) => `${script}version\n`,
  ending: () => ', protocol version: ',
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
 * A shell reading commands on stdin, for listings (see tool-shell.ts). What a request's
 * commands print goes to files; the shell prints only the line the script asks for, then the
 * mark.
 */
export const SHELL_SESSION: SessionTool = {
  name: 'sh',
  cmd: 'sh',
  args: ['-s'],
  stream: 'stdout',
  viaFile: false,
  request: (script, mark) => `${script}echo ${mark}\n`,
  ending: (mark) => `${mark}\n`,
  answer: (text, mark) => printedBefore(text, mark),
}

/** An answer that is all the tool printed before the line `mark`. */
function printedBefore(text: string, mark: string) {
  const at = lineAt(text, mark)
  if (at < 0) return undefined
  return {
    answer: { code: 0, stdout: text.slice(0, at), stderr: '' },
    rest: text.slice(at + mark.length + 1),
  }
}

/**
 * The number of `getsockopt(2)`, which the filter tables digest calls by `syscall`, by the
 * architecture Node names (the generic numbers of arm64 and riscv64 are the same).
 */
const GETSOCKOPT: Partial<Record<string, number>> = { x64: 55, arm64: 209, riscv64: 209 }

/**
 * The iptables-legacy filter tables, IPv4 and IPv6, as the kernel hands them to
 * `iptables-legacy-save` (`getsockopt` IPT_SO_GET_INFO, then IPT_SO_GET_ENTRIES with the size
 * it gave, again where the table changed between the two), with each rule's counters zeroed:
 * what is left changes only when the rules do (a match's or target's kernel-private state is
 * not handed out). perl-base, which every Debian system has, holds all it uses. The offsets are
 * those of struct ipt_entry and ip6t_entry (next_offset, counters).
 */
const DIGEST_SCRIPT = `use strict; use warnings; use Socket;
my $sys = shift; $| = 1;
socket(my $s4, AF_INET, SOCK_RAW, 255) or die "IPv4 raw socket: $!\n";
socket(my $s6, AF_INET6, SOCK_RAW, 255) or die "IPv6 raw socket: $!\n";
sub table {
  my ($s, $level, $counters, $next) = @_;
  for (1 .. 3) {
    my $info = pack('Z32x52', 'filter');
    my $len = pack('L', 84);
    syscall($sys, fileno($s), $level, 64, $info, $len) == 0 or return;
    my $size = unpack('L', substr($info, 80, 4));
    my $buf = pack('Z32Lx4', 'filter', $size) . ("\\0" x $size);
    $len = pack('L', 40 + $size);
    if (syscall($sys, fileno($s), $level, 65, $buf, $len) != 0) { next if $!{EAGAIN}; return }
    for (my $o = 40; $o + $counters + 16 <= length $buf;) {
      substr($buf, $o + $counters, 16, "\\0" x 16);
      my $n = unpack('S', substr($buf, $o + $next, 2));
      last if $n == 0;
      $o += $n;
    }
    return $info . $buf;
  }
  return;
}
my ($last, $gen) = ('', 0);
while (my $mark = <STDIN>) {
  my $v4 = table($s4, 0, 96, 90);
  my $v6 = table($s6, 41, 152, 142);
  if (defined $v4 && defined $v6) {
    my $now = "$v4\\n$v6";
    $gen++ if $now ne $last;
    $last = $now;
    print "$gen\\n";
  } else {
    print "unknown: $!\\n";
  }
  print $mark;
}
`

/**
 * A perl process that answers each request with a number that moves whenever the
 * iptables-legacy filter tables change (see DIGEST_SCRIPT): a look at them that starts no tool
 * and costs microseconds, where a listing costs a tool's start. Undefined where the
 * architecture's system call number is not known here.
 */
export function filterDigestTool(arch: string): SessionTool | undefined {
  const sys = GETSOCKOPT[arch]
  if (sys === undefined) return undefined
  return {
    name: 'perl',
    cmd: 'perl',
    args: ['-e', DIGEST_SCRIPT, String(sys)],
    stream: 'stdout',
    viaFile: false,
    request: (_script, mark) => `${mark}\n`,
    ending: (mark) => `${mark}\n`,
    answer: (text, mark) => printedBefore(text, mark),
  }
}

/** What a session runs for a one-shot tool's command (see sessionFor). */
export interface SessionRequest {
  readonly tool: SessionTool
  readonly script: string
  /** Whether the session's tool is started again after it (see KEPT_NFT_SCRIPT). */
  readonly restartAfter?: boolean
}

/**
 * The session that can do what `cmd args`, reading `stdin`, would, and the script it runs for
 * it, if any: an nft script up to 16 MB, a terse JSON listing (the read-back after an nft apply,
 * a read without set contents), and a small change to ipset elements or none, followed by the
 * sets' entry counts (sets made, swapped or destroyed go to a tool started for them).
 */
export function sessionFor(
  cmd: string,
  args: readonly string[],
  stdin: string,
): SessionRequest | undefined {
  if (cmd === 'nft') {
    const [a, b, list, ...more] = args
    const taken = stdin.length <= MAX_NFT_SCRIPT && stdin.endsWith('\n')
    if (a === '-f' && b === '-' && list === undefined && taken)
      return {
        tool: NFT_SESSION,
        script: stdin,
        ...(stdin.length > KEPT_NFT_SCRIPT && { restartAfter: true }),
      }
    const listing = a === '-t' && b === '-j' && more.length === 0 && stdin === ''
    if (listing && list?.startsWith('list ') && !list.includes('\n'))
      return { tool: NFT_SESSION, script: `${list}\n` }
    return undefined
  }
  if (cmd !== 'ipset' || args.join(' ') !== 'restore' || stdin.length > MAX_IPSET_SCRIPT)
    return undefined
  if (!stdin.endsWith('\n')) return undefined
  const lines = stdin.slice(0, -1).split('\n')
  if (lines.pop() !== 'list -t') return undefined
  const elements = lines.every((l) => IPSET_ELEMENT.test(l))
  return elements ? { tool: IPSET_SESSION, script: stdin } : undefined
}

/** Where `line` starts as a whole line of `text`, or -1. */
function lineAt(text: string, line: string): number {
  if (text.startsWith(`${line}\n`)) return 0
  const at = text.indexOf(`\n${line}\n`)
  return at < 0 ? -1 : at + 1
}
