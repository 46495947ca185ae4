import type { Runner } from '@palisade/agent'
import { runChecked } from '@palisade/agent'

/** Where a foreign rule stands relative to ours. */
export type Placement = 'before' | 'after' | 'nft-lower' | 'nft-higher'
export const PLACEMENTS: readonly Placement[] = ['before', 'after', 'nft-lower', 'nft-higher']
export type ForeignVerdict = 'accept' | 'drop' | 'none'
export const FOREIGN_VERDICTS: readonly ForeignVerdict[] = ['accept', 'drop', 'none']

export interface ForeignRule {
  readonly placement: Placement
  readonly proto: 'tcp' | 'udp'
  readonly port: number
  readonly verdict: ForeignVerdict
}

/** Priorities of the foreign nftables tables: below and above every priority we use. */
export const FOREIGN_PRIORITY = { lower: -160, higher: 30 } as const

/**
 * Adds foreign rules the way other tools would: iptables rules inserted before (-I INPUT 1) or
 * appended after (-A INPUT) whatever is there, with the iptables variant the host uses, and
 * native nftables tables at a lower and a higher priority than ours.
 */
export async function addForeignRules(
  run: Runner,
  variant: 'nft' | 'legacy',
  rules: readonly ForeignRule[],
): Promise<void> {
  const ipt = ['*filter']
  const nftChains: Record<'lower' | 'higher', string[]> = { lower: [], higher: [] }
  for (const r of rules) {
    const target = r.verdict === 'none' ? '' : ` -j ${r.verdict.toUpperCase()}`
    const spec = `-p ${r.proto} -m ${r.proto} --dport ${r.port}${target}`
    if (r.placement === 'before') ipt.push(`-I INPUT 1 ${spec}`)
    else if (r.placement === 'after') ipt.push(`-A INPUT ${spec}`)
    else
      nftChains[r.placement === 'nft-lower' ? 'lower' : 'higher'].push(
        `${r.proto} dport ${r.port} counter${r.verdict === 'none' ? '' : ` ${r.verdict}`}`,
      )
  }
  ipt.push('COMMIT')
  if (ipt.length > 2)
    await runChecked(run, `iptables-${variant}-restore`, ['--noflush'], {
      stdin: `${ipt.join('\n')}\n`,
    })
  const nft: string[] = []
  for (const side of ['lower', 'higher'] as const) {
    if (nftChains[side].length === 0) continue
    nft.push(
      `table inet foreign_${side} {`,
      `  chain input {`,
      `    type filter hook input priority ${FOREIGN_PRIORITY[side]}; policy accept;`,
    )
    nft.push(...nftChains[side].map((l) => `    ${l}`), '  }', '}')
  }
  if (nft.length > 0) await runChecked(run, 'nft', ['-f', '-'], { stdin: `${nft.join('\n')}\n` })
}

/** A firewalld-like table (public zone): established, loopback and the given TCP ports, reject the rest. */
export async function addFirewalldLike(run: Runner, allowedTcp: readonly number[]): Promise<void> {
  const script = [
    'table inet firewalld {',
    '  chain filter_INPUT {',
    '    type filter hook input priority 10; policy accept;',
    '    ct state established,related accept',
    '    iifname "lo" accept',
    ...(allowedTcp.length > 0 ? [`    tcp dport { ${allowedTcp.join(', ')} } accept`] : []),
    '    reject with icmpx admin-prohibited',
    '  }',
    '}',
  ]
  await runChecked(run, 'nft', ['-f', '-'], { stdin: `${script.join('\n')}\n` })
}

/** A Docker-like DOCKER-USER chain jumped to from FORWARD. */
export async function addDockerUserLike(run: Runner, variant: 'nft' | 'legacy'): Promise<void> {
  const text = [
    '*filter',
    ':DOCKER-USER - [0:0]',
    '-I FORWARD 1 -j DOCKER-USER',
    '-A DOCKER-USER -j RETURN',
    'COMMIT',
    '',
  ]
  await runChecked(run, `iptables-${variant}-restore`, ['--noflush'], { stdin: text.join('\n') })
}

/** Removes every rule, table and set in the namespace: both iptables variants, nftables, ipsets, conntrack. */
export async function resetFirewall(run: Runner): Promise<void> {
  await runChecked(run, 'nft', ['flush', 'ruleset'])
  for (const tool of ['iptables-legacy', 'ip6tables-legacy']) {
    await runChecked(run, tool, ['-F'])
    await runChecked(run, tool, ['-X'])
  }
  await runChecked(run, 'ipset', ['destroy'])
  await run('conntrack', ['-F'])
}
