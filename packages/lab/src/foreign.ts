import type { Runner } from '@palisade/agent'
import { runChecked } from '@palisade/agent'
import type { ForeignRule, ForeignVerdict } from './foreign-rule.js'
import { FOREIGN_PRIORITY } from './foreign-rule.js'

const IPTABLES_TARGET: Record<4 | 6, Record<ForeignVerdict, string>> = {
  4: {
    accept: ' -j ACCEPT',
    drop: ' -j DROP',
    reject: ' -j REJECT --reject-with icmp-admin-prohibited',
    none: '',
  },
  6: {
    accept: ' -j ACCEPT',
    drop: ' -j DROP',
    reject: ' -j REJECT --reject-with icmp6-adm-prohibited',
    none: '',
  },
}
const NFT_VERDICT: Record<ForeignVerdict, string> = {
  accept: ' accept',
  drop: ' drop',
  reject: ' reject with icmpx admin-prohibited',
  none: '',
}

/**
 * Adds foreign rules the way other tools would, for IPv4 and IPv6 alike: iptables and
 * ip6tables rules inserted before (-I INPUT 1) or appended after (-A INPUT) whatever is there,
 * with the iptables variant the host uses, and native nftables (inet) tables at a lower and a
 * higher priority than ours.
 */
export async function addForeignRules(
  run: Runner,
  variant: 'nft' | 'legacy',
  rules: readonly ForeignRule[],
): Promise<void> {
  const ipt: Record<4 | 6, string[]> = { 4: ['*filter'], 6: ['*filter'] }
  const nftChains: Record<'lower' | 'higher', string[]> = { lower: [], higher: [] }
  for (const r of rules) {
    if (r.placement === 'before' || r.placement === 'after') {
      const at = r.placement === 'before' ? '-I INPUT 1' : '-A INPUT'
      for (const family of [4, 6] as const)
        ipt[family].push(
          `${at} -p ${r.proto} -m ${r.proto} --dport ${r.port}${IPTABLES_TARGET[family][r.verdict]}`,
        )
    } else
      nftChains[r.placement === 'nft-lower' ? 'lower' : 'higher'].push(
        `${r.proto} dport ${r.port} counter${NFT_VERDICT[r.verdict]}`,
      )
  }
  for (const family of [4, 6] as const) {
    if (ipt[family].length === 1) continue
    const tool = family === 4 ? `iptables-${variant}-restore` : `ip6tables-${variant}-restore`
    await runChecked(run, tool, ['--noflush'], { stdin: `${ipt[family].join('\n')}\nCOMMIT\n` })
  }
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
