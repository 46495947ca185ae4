import type { ApplyOptions, Desired, Plan, Ruleset } from '@palisade/firewall'
import { applyScript } from '@palisade/firewall'
import type { Runner } from '../exec.js'
import { CommandError } from '../exec.js'
import { verifyApplied } from './verify-applied.js'

export type { ApplyOptions } from '@palisade/firewall'

export interface Applied {
  readonly plan: Plan
  /**
   * Our objects after the apply as `verifyApplied` read them back (or followed them, for a
   * commit the monitor reported): diffed against `desired`, anything but an empty diff means
   * the apply failed or was partial.
   */
  readonly after: Ruleset
  /** `ipset list -t` as the apply's ipset run printed it after its changes, if it did. */
  readonly counts?: string
}

export interface ApplyHooks {
  /** Runs before a full replacement (which empties every set), once the plan is known. */
  readonly beforeFull?: () => Promise<void>
  /**
   * Whether the change monitor reported the iptables-nft commit of the process `pid` (and, as
   * it runs, reports every other process's change to the filter tables since `actual` was
   * read): what such a commit left then follows from what it met and wrote, and is not listed
   * (see verifyApplied). Absent where no monitor runs.
   */
  readonly commitReported?: (pid: number | undefined) => Promise<boolean>
}

/**
 * Brings the kernel to `desired`, given what it holds now (`actual`, read or verified just
 * before): runs, in order, the commands `applyScript` chooses, stops at the first that fails,
 * then reads back what they changed (see verifyApplied). Returns the plan it carried out and
 * what it read back.
 */
export async function applyDesired(
  run: Runner,
  desired: Desired,
  actual: Ruleset,
  opts: ApplyOptions,
  hooks: ApplyHooks = {},
): Promise<Applied> {
  const { plan, commands } = applyScript(desired, actual, opts)
  if (plan.kind === 'full') await hooks.beforeFull?.()
  let counts: string | undefined
  const reported: Promise<['ip' | 'ip6', string, boolean]>[] = []
  for (const c of commands) {
    const r = await run(c.cmd, c.args, { stdin: c.stdin })
    if (r.code !== 0) throw new CommandError([c.cmd, ...c.args].join(' '), r)
    if (c.countsAfter) counts = r.stdout
    const family = /^(ip6?)tables-nft-restore$/.exec(c.cmd)?.[1] as 'ip' | 'ip6' | undefined
    const report = hooks.commitReported
    if (family && report)
      // A commit of nothing makes no generation, and changes nothing to follow.
      reported.push(
        (changesSomething(c.stdin) ? report(r.pid) : Promise.resolve(true)).then((seen) => [
          family,
          c.stdin,
          seen,
        ]),
      )
  }
  const committed = Object.fromEntries(
    (await Promise.all(reported)).flatMap(([f, text, seen]) => (seen ? [[f, text]] : [])),
  )
  const after = await verifyApplied(run, desired, actual, plan, { countsAfter: counts, committed })
  return { plan, after, ...(counts !== undefined && { counts }) }
}

/** Whether an `iptables-restore` text holds more than its table's start and COMMIT. */
const changesSomething = (restore: string) => restore.split('\n').filter(Boolean).length > 2
