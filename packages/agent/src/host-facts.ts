import { access, readFile } from 'node:fs/promises'
import { constants } from 'node:fs'
import { delimiter, join } from 'node:path'
import type { Runner } from './exec.js'
import { runChecked } from './exec.js'
import type { BackendFacts } from './detect.js'

async function onPath(tool: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    try {
      await access(join(dir, tool), constants.X_OK)
      return true
    } catch {
      // not in this directory
    }
  }
  return false
}

export interface OsRelease {
  readonly id: string
  readonly versionId: string
  readonly prettyName: string
}

export async function readOsRelease(path = '/etc/os-release'): Promise<OsRelease> {
  const text = await readFile(path, 'utf8').catch(() => '')
  const get = (k: string) => new RegExp(`^${k}="?([^"\\n]*)"?$`, 'm').exec(text)?.[1] ?? ''
  return {
    id: get('ID'),
    versionId: get('VERSION_ID'),
    prettyName: get('PRETTY_NAME') || 'unknown',
  }
}

export async function installedTools(): Promise<BackendFacts['tools']> {
  const [nft, iptablesNft, iptablesLegacy] = await Promise.all([
    onPath('nft'),
    onPath('iptables-nft-restore'),
    onPath('iptables-legacy-restore'),
  ])
  return { nft, iptablesNft, iptablesLegacy }
}

const SERVICES = ['firewalld', 'ufw', 'docker', 'SuSEfirewall2', 'nftables', 'iptables'] as const

/** Firewall-related services systemd reports active (none where systemd is absent). */
export async function activeServices(run: Runner): Promise<string[]> {
  if (!(await onPath('systemctl'))) return []
  const out: string[] = []
  for (const s of SERVICES) {
    const r = await run('systemctl', ['is-active', '--quiet', s], { timeoutMs: 5000 }).catch(
      () => undefined,
    )
    if (r?.code === 0) out.push(s)
  }
  return out
}

/** This host's addresses (the namespace's, when run inside one), from `ip -j addr`. */
export async function hostInterfaces(run: Runner): Promise<{ name: string; address: string }[]> {
  const out = JSON.parse(await runChecked(run, 'ip', ['-j', 'addr', 'show'])) as {
    ifname: string
    addr_info?: { local: string; scope: string }[]
  }[]
  return out.flatMap((l) =>
    l.ifname === 'lo'
      ? []
      : (l.addr_info ?? [])
          .filter((a) => a.scope === 'global')
          .map((a) => ({ name: l.ifname, address: a.local })),
  )
}
