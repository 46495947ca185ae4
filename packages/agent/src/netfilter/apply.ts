import type { ApplyOptions, Desired, Plan, Ruleset } from '@palisade/firewall'
import { applyScript } from '@palisade/firewall'
import type { Runner } from '../exec.js'
import { runChecked } from '../exec.js'
import { verifyApplied } from './verify-applied.js'

export type { ApplyOptions } from '@palisade/firewall'

export interface Applied {
  readonly plan: Plan
  /**
   * Our objects after the apply as `verifyApplied` read them back: diffed against `desired`,
   * anything but an empty diff means the apply failed or was partial.
   */
  readonly after: Ruleset
  /** `ipset list -t` as the apply's ipset run printed it after its changes, if it did. */
  readonly counts?: string
}

/**
 * Brings the kernel to `desired`, given what it holds now (`actual`, read or verified just
 * before): runs, in order, the commands `applyScript` chooses, stops at the first that fails,
 * then reads back what they changed. Returns the plan it carried out and what it read back.
 */
export async function applyDesired(
  run: Runner,
  desired: Desired,
  actual: Ruleset,
  opts: ApplyOptions,
  /** Runs before a full replacement (which empties every set), once the plan is known. */
  beforeFull?: () => Promise<void>,
): Promise<Applied> {
  const { plan, commands } = applyScript(desired, actual, opts)
  if (plan.kind === 'full') await beforeFull?.()
  let counts: string | undefined
  for (const c of commands) {
    const out = await runChecked(run, c.cmd, c.args, { stdin: c.stdin })
    if (c.countsAfter) counts = out
  }
  const after = await verifyApplied(run, desired, actual, plan, counts)
  return { plan, after, ...(counts !== undefined && { counts }) }
}
