import type { Runner } from '@palisade/agent'
import { runChecked } from '@palisade/agent'

/**
 * The firewalls a host meets in the field, written the way their tools write them (shortened to
 * what matters here): firewalld's nftables table with zones, Docker's iptables chains and NAT,
 * ufw's chains on iptables-legacy, and a rule an administrator typed by hand.
 */

export interface FirewalldZone {
  readonly name: string
  /** How packets reach the zone: an input interface or a source range. */
  readonly match: { readonly iifname: string } | { readonly saddr: string }
  readonly allowTcp: readonly number[]
}

/** firewalld (nftables backend): `table inet firewalld` at priority +10, a chain set per zone. */
export async function addFirewalld(run: Runner, zones: readonly FirewalldZone[]): Promise<void> {
  const dispatch = zones.map((z) =>
    'iifname' in z.match
      ? `    iifname "${z.match.iifname}" goto filter_IN_${z.name}`
      : `    ip saddr ${z.match.saddr} goto filter_IN_${z.name}`,
  )
  const zoneChains = zones.flatMap((z) => [
    `  chain filter_IN_${z.name} {`,
    `    jump filter_IN_${z.name}_pre`,
    `    jump filter_IN_${z.name}_log`,
    `    jump filter_IN_${z.name}_deny`,
    `    jump filter_IN_${z.name}_allow`,
    `    jump filter_IN_${z.name}_post`,
    `    meta l4proto { icmp, ipv6-icmp } accept`,
    `  }`,
    `  chain filter_IN_${z.name}_pre { }`,
    `  chain filter_IN_${z.name}_log { }`,
    `  chain filter_IN_${z.name}_deny { }`,
    `  chain filter_IN_${z.name}_allow {`,
    ...z.allowTcp.map((p) => `    tcp dport ${p} ct state new,untracked accept`),
    `  }`,
    `  chain filter_IN_${z.name}_post { }`,
  ])
  const script = [
    'table inet firewalld {',
    '  chain filter_INPUT {',
    '    type filter hook input priority 10; policy accept;',
    '    ct state established,related accept',
    '    ct status dnat accept',
    '    iifname "lo" accept',
    '    ct state invalid drop',
    '    jump filter_INPUT_ZONES',
    '    reject with icmpx admin-prohibited',
    '  }',
    '  chain filter_INPUT_ZONES {',
    ...dispatch,
    '  }',
    ...zoneChains,
    '}',
  ]
  await runChecked(run, 'nft', ['-f', '-'], { stdin: `${script.join('\n')}\n` })
}

/** Docker's filter chains (DOCKER-USER, isolation) and its NAT for one published port. */
export async function addDocker(run: Runner, variant: 'nft' | 'legacy'): Promise<void> {
  const text = [
    '*nat',
    ':DOCKER - [0:0]',
    '-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER',
    '-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER',
    '-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE',
    '-A DOCKER -i docker0 -j RETURN',
    '-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 172.17.0.2:80',
    'COMMIT',
    '*filter',
    ':FORWARD DROP [0:0]',
    ':DOCKER - [0:0]',
    ':DOCKER-ISOLATION-STAGE-1 - [0:0]',
    ':DOCKER-ISOLATION-STAGE-2 - [0:0]',
    ':DOCKER-USER - [0:0]',
    '-A FORWARD -j DOCKER-USER',
    '-A FORWARD -j DOCKER-ISOLATION-STAGE-1',
    '-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    '-A FORWARD -o docker0 -j DOCKER',
    '-A FORWARD -i docker0 ! -o docker0 -j ACCEPT',
    '-A FORWARD -i docker0 -o docker0 -j ACCEPT',
    '-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT',
    '-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2',
    '-A DOCKER-ISOLATION-STAGE-1 -j RETURN',
    '-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP',
    '-A DOCKER-ISOLATION-STAGE-2 -j RETURN',
    '-A DOCKER-USER -j RETURN',
    'COMMIT',
    '',
  ]
  await runChecked(run, `iptables-${variant}-restore`, ['--noflush'], { stdin: text.join('\n') })
}

/**
 * ufw on iptables-legacy: "default deny incoming" (INPUT policy DROP), established traffic and
 * the user's `ufw allow PORT/tcp` rules accepted in ufw's own chains.
 */
export async function addUfw(run: Runner, allowTcp: readonly number[]): Promise<void> {
  const text = [
    '*filter',
    ':INPUT DROP [0:0]',
    ':ufw-before-input - [0:0]',
    ':ufw-user-input - [0:0]',
    ':ufw-after-input - [0:0]',
    ':ufw-reject-input - [0:0]',
    '-A INPUT -j ufw-before-input',
    '-A INPUT -j ufw-after-input',
    '-A INPUT -j ufw-reject-input',
    '-A ufw-before-input -i lo -j ACCEPT',
    '-A ufw-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    '-A ufw-before-input -m conntrack --ctstate INVALID -j DROP',
    '-A ufw-before-input -p icmp -m icmp --icmp-type 8 -j ACCEPT',
    '-A ufw-before-input -j ufw-user-input',
    ...allowTcp.map((p) => `-A ufw-user-input -p tcp -m tcp --dport ${p} -j ACCEPT`),
    '-A ufw-after-input -p udp -m udp --dport 137 -j DROP',
    'COMMIT',
    '',
  ]
  await runChecked(run, 'iptables-legacy-restore', ['--noflush'], { stdin: text.join('\n') })
}

/** A rule an administrator typed: `iptables -I INPUT 1 -p tcp --dport PORT -j ACCEPT`. */
export async function addHandWritten(
  run: Runner,
  variant: 'nft' | 'legacy',
  port: number,
  comment: string,
): Promise<void> {
  await runChecked(run, `iptables-${variant}`, [
    '-I',
    'INPUT',
    '1',
    '-p',
    'tcp',
    '--dport',
    String(port),
    '-m',
    'comment',
    '--comment',
    comment,
    '-j',
    'ACCEPT',
  ])
}
