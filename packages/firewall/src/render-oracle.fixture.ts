/**
 * Independent readers of what the renderers write, line by line: each says whether a text
 * consists only of statements on our table, our chains and our sets (hooks into our chains,
 * and deletions of rules read back from the kernel, included). Deliberately written from the
 * tools' syntax, not from the renderers, so a renderer bug cannot hide behind the same code.
 */

const ID = '[A-Za-z][A-Za-z0-9_]*'
const ADDRESS = '[0-9a-f.:]+'
const CIDR = `${ADDRESS}/\\d{1,3}`
const ELEMENT = `(?:${CIDR}|${ADDRESS} \\. \\d{1,5}|${ADDRESS})`
const NFT_SET = new RegExp(
  `^  set ${ID} \\{ type ipv[46]_addr(?: \\. inet_service)?;(?: flags interval;)?(?: elements = \\{ ${ELEMENT}(?:, ${ELEMENT})* \\};)? \\}$`,
)
const NFT_BASE =
  'type filter hook (?:prerouting|input|forward|output|postrouting) priority -?\\d+; policy (?:accept|drop);'
const NFT_KEYWORDS = new Set(
  (
    'ct state meta nfproto l4proto iifname oifname ip ip6 saddr daddr tcp udp sctp udplite ' +
    'sport dport icmp icmpv6 type code counter log prefix group snaplen queue-threshold ' +
    'accept drop reject return comment ipv4 ipv6 != . { }'
  ).split(' '),
)
const NFT_VALUES = [
  /^\d+(-\d+)?,?$/,
  /^(established|related|new|invalid|untracked)(,(established|related|new|invalid|untracked))*$/,
  /^[0-9a-f.:]+(\/\d{1,3})?,?$/,
  new RegExp(`^@${ID}$`),
  /^"[A-Za-z0-9:_.-]+"$/,
]

/** Why an nft rule body is not one of ours, or undefined when it is. */
export function nftRuleProblem(rule: string): string | undefined {
  const tokens = rule.split(' ')
  let depth = 0
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] ?? ''
    if (t === 'jump' || t === 'goto') {
      if (!new RegExp(`^${ID}$`).test(tokens[i + 1] ?? '')) return `jump to ${tokens[i + 1]}`
      i++
      continue
    }
    if (t === '{') depth++
    if (t === '}' && --depth < 0) return 'closes a block it did not open'
    if (!NFT_KEYWORDS.has(t) && !NFT_VALUES.some((re) => re.test(t))) return `token ${t}`
  }
  return depth === 0 ? undefined : 'leaves a block open'
}

/** Why a whole-table `nft -f` script touches something not ours, or undefined. */
export function nftScriptProblem(text: string): string | undefined {
  let state: 'top' | 'table' | 'chain' = 'top'
  for (const line of body(text)) {
    if (state === 'top') {
      if (line === 'table inet palisade' || line === 'delete table inet palisade') continue
      if (line === 'table inet palisade {') state = 'table'
      else return `outside our table: ${line}`
    } else if (state === 'table') {
      if (line === '}') state = 'top'
      else if (new RegExp(`^  chain ${ID} \\{$`).test(line)) state = 'chain'
      else if (!NFT_SET.test(line)) return `in our table: ${line}`
    } else if (line === '  }') state = 'table'
    else if (!line.startsWith('    ')) return `in a chain: ${line}`
    else if (!new RegExp(`^${NFT_BASE}$`).test(line.slice(4))) {
      const p = nftRuleProblem(line.slice(4))
      if (p) return `rule ${line}: ${p}`
    }
  }
  return state === 'top' ? undefined : 'a block left open'
}

/** Why a chains-only or elements-only `nft -f` script touches something not ours, or undefined. */
export function nftCommandsProblem(text: string): string | undefined {
  const chain = `inet palisade ${ID}`
  for (const line of body(text)) {
    if (new RegExp(`^(flush|delete) chain ${chain}$`).test(line)) continue
    if (new RegExp(`^add chain ${chain}(?: \\{ ${NFT_BASE} \\})?$`).test(line)) continue
    if (
      new RegExp(`^(add|delete) element ${chain} \\{ ${ELEMENT}(?:, ${ELEMENT})* \\}$`).test(line)
    )
      continue
    const rule = new RegExp(`^add rule ${chain} (.*)$`).exec(line)
    if (!rule) return `not ours: ${line}`
    const p = nftRuleProblem(rule[1] ?? '')
    if (p) return `rule ${line}: ${p}`
  }
  return undefined
}

const OUR_CHAIN = 'PALISADE-[A-Z0-9_-]+'
const BUILTIN = '(?:INPUT|OUTPUT|FORWARD)'
const IPT_FLAGS = new Set(
  (
    '-i -o -s -d -p -m -j -g --ctstate --match-set --comment --sport --dport --sports --dports ' +
    '--icmp-type --icmpv6-type --nflog-prefix --nflog-group --nflog-size --nflog-threshold'
  ).split(' '),
)
const IPT_MODULES = new Set('conntrack set comment tcp udp sctp icmp icmp6 multiport'.split(' '))
const IPT_TARGETS = new RegExp(`^(ACCEPT|DROP|REJECT|RETURN|NFLOG|${OUR_CHAIN})$`)

/** Why an iptables rule specification is not one of ours, or undefined. */
export function iptablesSpecProblem(spec: string): string | undefined {
  const tokens = spec.split(' ')
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] ?? ''
    const next = tokens[i + 1] ?? ''
    if (t === '-m' && !IPT_MODULES.has(next)) return `module ${next}`
    if (t === '-j' && !IPT_TARGETS.test(next)) return `target ${next}`
    if (t === '-g' && !new RegExp(`^${OUR_CHAIN}$`).test(next)) return `goto ${next}`
    if (t.startsWith('-') && !IPT_FLAGS.has(t)) return `option ${t}`
    if (t !== '!' && !/^[A-Za-z0-9:_.,/-]+$/.test(t)) return `token ${t}`
  }
  return undefined
}

/**
 * Why `iptables-restore` input does something besides our chains, our hooks and deleting the
 * rules named in `deletable` (read back from the kernel) from built-in chains, or undefined.
 */
export function iptablesRestoreProblem(
  text: string,
  deletable: ReadonlySet<string>,
): string | undefined {
  const lines = body(text)
  if (lines[0] !== '*filter' || lines[lines.length - 1] !== 'COMMIT') return 'not one filter commit'
  for (const line of lines.slice(1, -1)) {
    if (new RegExp(`^:${OUR_CHAIN} - \\[0:0\\]$`).test(line)) continue
    if (new RegExp(`^-[FX] ${OUR_CHAIN}$`).test(line)) continue
    const del = new RegExp(`^-D ${BUILTIN} (.*)$`).exec(line)
    if (del && deletable.has(del[1] ?? '')) continue
    const hook = new RegExp(
      `^(?:-I ${BUILTIN} 1|-A ${BUILTIN}|-D ${BUILTIN}) (.* -j ${OUR_CHAIN})$`,
    ).exec(line)
    const ours = new RegExp(`^-A ${OUR_CHAIN} (.*)$`).exec(line)
    const spec = hook?.[1] ?? ours?.[1]
    if (spec === undefined) return `not ours: ${line}`
    const p = iptablesSpecProblem(spec)
    if (p) return `${line}: ${p}`
  }
  return undefined
}

/** Why `ipset restore` input touches a set not ours, or undefined. */
export function ipsetProblem(text: string): string | undefined {
  const set = 'palisade-[a-z0-9-]+'
  const forms = [
    `^create ${set} hash:net family inet6? hashsize 1024 maxelem \\d+ -exist$`,
    `^flush ${set}$`,
    `^destroy ${set}$`,
    `^swap ${set} ${set}$`,
    `^add ${set} ${CIDR}( -exist)?$`,
    `^del ${set} ${CIDR} -exist$`,
    '^list -t$',
  ].map((f) => new RegExp(f))
  const bad = body(text).find((l) => !forms.some((re) => re.test(l)))
  return bad === undefined ? undefined : `not ours: ${bad}`
}

/** The closed-restore script: exactly the fixed table, with management ports as numbers. */
export function closedScriptProblem(text: string): string | undefined {
  const fixed = [
    'table inet palisade_closed {',
    '  chain input {',
    '    type filter hook input priority 0; policy drop;',
    '    ct state established,related accept',
    '    iifname "lo" accept',
    '    udp dport { 68, 546 } accept',
    '    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept',
    '  }',
    '}',
  ]
  const lines = body(text).filter((l) => !/^ {4}tcp dport \{ \d+(, \d+)* \} accept$/.test(l))
  return lines.join('\n') === fixed.join('\n') ? undefined : 'not the closed table'
}

/** The lines of a tool input that ends in one newline, as every renderer's does. */
function body(text: string): string[] {
  if (text === '') return []
  if (!text.endsWith('\n')) return ['(no final newline)']
  return text.slice(0, -1).split('\n')
}
