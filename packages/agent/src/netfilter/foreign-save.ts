import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Backend } from '@palisade/firewall'
import {
  isIptablesNftTable,
  isOurTable,
  parseNftJson,
  renderClosedScript,
} from '@palisade/firewall'
import type { RestoreMode } from '@palisade/protocol'
import type { Runner } from '../exec.js'
import { runChecked, ToolMissingError } from '../exec.js'
import { writeAtomic } from '../state-dir.js'
import { applyDesired } from './apply.js'
import { readOwn } from './read-own.js'

/** The tools whose output we save and restore, and the file each goes to. */
const IPTABLES_FILES = [
  ['iptables-nft', 'iptables-nft.v4'],
  ['ip6tables-nft', 'iptables-nft.v6'],
  ['iptables-legacy', 'iptables-legacy.v4'],
  ['ip6tables-legacy', 'iptables-legacy.v6'],
] as const

/**
 * Saves the firewall we found before we first program a host, so that unpairing with
 * `--firewall-restore saved` can put it back: native nftables tables as `nft` scripts,
 * iptables (both variants) as restore files, and ipsets.
 */
export async function saveForeignRuleset(run: Runner, dir: string): Promise<void> {
  if (existsSync(join(dir, 'manifest.json'))) return
  // A tool that is not installed holds nothing to save.
  const read = (cmd: string, args: readonly string[]) =>
    runChecked(run, cmd, args).catch((e: Error) => {
      if (e instanceof ToolMissingError) return ''
      throw e
    })
  const nftText = await read('nft', ['-j', 'list', 'ruleset'])
  const tables = nftText ? parseNftJson(nftText) : []
  const scripts: string[] = []
  for (const t of tables) {
    if (isIptablesNftTable(t) || isOurTable(t)) continue
    scripts.push(await runChecked(run, 'nft', ['list', 'table', t.family, t.name]))
  }
  await writeAtomic(join(dir, 'nft-tables.nft'), scripts.join('\n'))
  for (const [tool, file] of IPTABLES_FILES)
    await writeAtomic(join(dir, file), await runChecked(run, `${tool}-save`, []))
  await writeAtomic(join(dir, 'ipset.txt'), await runChecked(run, 'ipset', ['save']))
  await writeAtomic(
    join(dir, 'manifest.json'),
    `${JSON.stringify({ savedAt: new Date().toISOString() })}\n`,
  )
}

/** Removes every rule, table, chain and set in this network namespace. */
async function flushEverything(run: Runner): Promise<void> {
  await runChecked(run, 'nft', ['flush', 'ruleset'])
  for (const tool of ['iptables-legacy', 'ip6tables-legacy']) {
    for (const chain of ['INPUT', 'OUTPUT', 'FORWARD']) await run(tool, ['-P', chain, 'ACCEPT'])
    await runChecked(run, tool, ['-F'])
    await runChecked(run, tool, ['-X'])
  }
  await runChecked(run, 'ipset', ['destroy'])
}

/** Removes our rules, then leaves the firewall as `mode` asks (spec section 3, unpair). */
export async function restoreFirewall(
  run: Runner,
  backend: Backend | 'auto',
  mode: RestoreMode,
  savedDir: string,
  managementTcpPorts: readonly number[],
): Promise<void> {
  // An agent that never chose a backend never programmed anything of ours.
  if (backend !== 'auto') {
    const empty = {
      backend,
      version: 0,
      mode: 'exclusive',
      hookPosition: 'first',
      tables: [],
      hooks: [],
      ipsets: [],
    } as const
    await applyDesired(run, empty, await readOwn(run, backend), { modeChanged: false })
  }
  if (mode === 'default') return
  if (mode === 'saved' && !existsSync(join(savedDir, 'manifest.json'))) {
    throw new Error(
      `no saved firewall in ${savedDir}: it is saved when the agent first programs a host; our rules were removed, nothing else was changed`,
    )
  }
  await flushEverything(run)
  if (mode === 'open') return
  if (mode === 'closed') {
    await runChecked(run, 'nft', ['-f', '-'], { stdin: renderClosedScript(managementTcpPorts) })
    return
  }
  const read = (f: string) => readFile(join(savedDir, f), 'utf8')
  const ipset = await read('ipset.txt')
  if (ipset.trim()) await runChecked(run, 'ipset', ['restore'], { stdin: ipset })
  for (const [tool, file] of IPTABLES_FILES) {
    const text = await read(file)
    if (text.trim()) await runChecked(run, `${tool}-restore`, [], { stdin: text })
  }
  const nft = await read('nft-tables.nft')
  if (nft.trim()) await runChecked(run, 'nft', ['-f', '-'], { stdin: nft })
}
