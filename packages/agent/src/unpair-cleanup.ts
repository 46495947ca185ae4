import type { Backend } from '@palisade/firewall'
import type { RestoreMode } from '@palisade/protocol'
import { rm } from 'node:fs/promises'
import type { Runner } from './exec.js'
import { restoreFirewall } from './netfilter/foreign-save.js'

export interface UnpairCleanup {
  readonly run: Runner
  readonly backend: Backend
  /** How the firewall is left, as the server asked. */
  readonly mode: RestoreMode
  /** The state dir, forgotten at the end, and the firewall saved in it before we started. */
  readonly dir: string
  readonly saved: string
  /** Ports a `closed` restore still lets in. */
  readonly managementTcpPorts: number[]
  readonly log: (line: Record<string, unknown>) => void
  /** Says goodbye to the server (after the firewall is restored, before the state dir goes). */
  readonly goodbye: () => Promise<void> | undefined
  /** Called just before the state dir is forgotten. */
  readonly leaving: () => void
}

/**
 * After the server unpaired the agent: restore the firewall as asked (a failure is logged and
 * does not stop the rest), say goodbye, forget the state dir.
 */
export async function cleanUpAfterUnpair(u: UnpairCleanup): Promise<void> {
  await restoreFirewall(u.run, u.backend, u.mode, u.saved, u.managementTcpPorts).catch((e: Error) =>
    u.log({ msg: 'restoring the firewall after unpair failed', error: e.message }),
  )
  await u.goodbye()
  u.leaving()
  await rm(u.dir, { recursive: true, force: true })
}
