import type { Backend } from '@palisade/firewall'
import { IPSET_PREFIX, isCountingSet } from '@palisade/firewall'
import type { Runner } from '../exec.js'
import { runChecked } from '../exec.js'

/**
 * What the kernel holds of ours, in a form that is cheap to take and changes whenever our
 * objects do, for the backends whose changes send no event: the iptables-legacy filter tables
 * (the digest's number, or as `iptables-legacy-save` prints them), and the headers of our
 * ipsets (`ipset list -t`, which leaves the elements out). Comparing two of these tells whether
 * a full read is needed.
 */
export interface ChangeSignal {
  /** The filter tables ('' where nf_tables reports rule changes as events). */
  readonly rules: string
  /** Undefined when not taken. */
  readonly sets?: string
}

/**
 * An `iptables-save` listing without what changes while nothing is changed: the comment lines
 * (they carry the time) and the packet counters of the built-in chains' policies.
 */
export const stableSave = (text: string): string =>
  text
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => (l.startsWith(':') ? l.replace(/ \[\d+:\d+\]$/, '') : l))
    .join('\n')

/**
 * Our sets from an `ipset list -t` listing: names, types, headers, sizes and entry counts; not
 * the references, which others' rules change. An element swapped for another changes none of
 * these: the backstop's full read finds that. A counting set changes with every connection
 * counted: only its name and kind are taken.
 */
export function ourSetHeaders(text: string): string {
  const out: string[] = []
  for (const block of text.split(/\n(?=Name: )/)) {
    if (!block.startsWith(`Name: ${IPSET_PREFIX}`)) continue
    const lines = block.split('\n').filter((l) => l !== '' && !l.startsWith('References:'))
    const type = lines.find((l) => l.startsWith('Type: '))?.slice(6) ?? ''
    const header = lines.find((l) => l.startsWith('Header: '))?.split(' ') ?? []
    out.push(...(isCountingSet(type, header) ? lines.slice(0, 2) : lines))
  }
  return out.join('\n')
}

/** A signal, and the listings it was taken from. */
export interface Look {
  readonly signal: ChangeSignal
  /**
   * The filter tables' `iptables-save` listings, IPv4 then IPv6 (none where events report, or
   * where the digest told).
   */
  readonly saves: readonly string[]
  /** `ipset list -t`, where taken. */
  readonly ipsetHeaders?: string
}

/**
 * Takes a look: the signal and its listings (undefined for nftables, whose every change is an
 * event); the sets' part only with `sets` (where nf_tables reports rule changes, nothing else is
 * left to take). On iptables-legacy the filter tables' part is `digest` where given (the filter
 * tables digest's answer, see filterDigestTool), their listings where not.
 */
export async function takeLook(
  run: Runner,
  backend: Backend,
  opts: { readonly sets: boolean; readonly digest?: string | undefined },
): Promise<Look | undefined> {
  if (backend === 'nftables') return undefined
  const saves =
    backend === 'iptables-legacy' && opts.digest === undefined
      ? [
          ['iptables-legacy-save', '-t', 'filter'],
          ['ip6tables-legacy-save', '-t', 'filter'],
        ]
      : []
  const commands = [...saves, ...(opts.sets ? [['ipset', 'list', '-t']] : [])]
  // Asked for together: the agent's runner runs listings asked for at once side by side.
  const out = await Promise.all(commands.map(([cmd = '', ...args]) => runChecked(run, cmd, args)))
  const ipsetHeaders = opts.sets ? out.pop() : undefined
  return {
    signal: {
      rules: opts.digest === undefined ? out.map(stableSave).join('\n') : `digest ${opts.digest}`,
      ...(ipsetHeaders !== undefined && { sets: ourSetHeaders(ipsetHeaders) }),
    },
    saves: out,
    ...(ipsetHeaders !== undefined && { ipsetHeaders }),
  }
}
