import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { isSea } from 'node:sea'
import { pipeline } from 'node:stream/promises'
import type { AgentBuild } from '@palisade/protocol'
import { AGENT_ARCHES } from '@palisade/protocol'

/** systemd restarts a unit with `Restart=on-failure` that exits with this (EX_TEMPFAIL). */
export const EXIT_RESTART = 75

/** The build this process runs: the one-file agent's path and hash, or none from a checkout. */
export async function runningBuild(
  version: string,
): Promise<{ build: AgentBuild | undefined; executable: string | undefined }> {
  const arch = AGENT_ARCHES.find((a) => a === process.arch)
  if (!arch) return { build: undefined, executable: undefined }
  if (!isSea()) return { build: { version, arch, sha256: null }, executable: undefined }
  // execPath is the file itself, symlinks resolved (/proc/self/exe): an upgrade renames builds
  // in the agent's own directory, never over a link such as /usr/local/bin/palisade-agent.
  const hash = createHash('sha256')
  await pipeline(createReadStream(process.execPath), hash)
  return { build: { version, arch, sha256: hash.digest('hex') }, executable: process.execPath }
}

/**
 * Starts the agent's executable again, as it was started, once this process has stopped (its
 * rules stay in the kernel): under systemd by exiting for `Restart=on-failure`, otherwise by
 * starting a detached copy with the same arguments and output.
 */
export function restartProcess(log: (line: Record<string, unknown>) => void, why: string): never {
  if (process.env.INVOCATION_ID) {
    log({ msg: 'exiting for systemd to start the agent again', why, code: EXIT_RESTART })
    process.exit(EXIT_RESTART)
  }
  // A one-file agent sees its own path twice at the head of argv; node sees itself and a script.
  const args = isSea() ? process.argv.slice(2) : [...process.execArgv, ...process.argv.slice(1)]
  const child = spawn(process.execPath, args, { detached: true, stdio: 'inherit' })
  child.unref()
  log({ msg: 'started the agent again', why, pid: child.pid })
  process.exit(0)
}
