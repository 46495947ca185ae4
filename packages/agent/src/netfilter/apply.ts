import type { ApplyOptions, Desired, Plan, Ruleset } from '@palisade/firewall'
import { applyScript } from '@palisade/firewall'
import type { Runner } from '../exec.js'
import { runChecked } from '../exec.js'

export type { ApplyOptions } from '@palisade/firewall'

/**
 * Brings the kernel to `desired`, given what it holds now (`actual`, read just before): runs,
 * in order, the commands `applyScript` chooses, and stops at the first that fails. Returns the
 * plan it carried out.
 */
export async function applyDesired(
  run: Runner,
  desired: Desired,
  actual: Ruleset,
  opts: ApplyOptions,
): Promise<Plan> {
  const { plan, commands } = applyScript(desired, actual, opts)
  for (const c of commands) await runChecked(run, c.cmd, c.args, { stdin: c.stdin })
  return plan
}
