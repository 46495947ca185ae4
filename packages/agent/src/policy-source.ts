/**
 * Where the agent's policy comes from: a local file it follows, or its policy server. Either
 * offers each new policy to the commit-confirm machine, which decides what is enforced.
 */
import type { HostPolicy } from '@palisade/model'
import { hostPolicyFromLocalFile } from '@palisade/model'
import { unwatchFile, watchFile } from 'node:fs'
import { readFile } from 'node:fs/promises'
import type { Candidate } from './commit-confirm.js'
import type { ServerLink } from './server-link.js'

export interface PolicySource {
  /** Starts offering policies; `knownHash` names the policy the agent already has. */
  start(knownHash: string | undefined): Promise<void>
  /** Reads the policy again (SIGHUP). */
  reload(): Promise<void>
  stop(): Promise<void>
}

async function loadPolicyFile(path: string): Promise<HostPolicy> {
  const text = await readFile(path, 'utf8')
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (e) {
    throw new Error(`${path} is not valid JSON: ${(e as Error).message}`, { cause: e })
  }
  return hostPolicyFromLocalFile(doc, 'local')
}

/** Standalone: a local policy file, read again whenever it changes. */
export class FilePolicySource implements PolicySource {
  constructor(
    private readonly path: string,
    /** Offers the policy read (to commit-confirm, through the agent). */
    private readonly offer: (c: Candidate, source: string) => void,
    /** A file that cannot be applied: the previous policy stays, for this reason. */
    private readonly rejected: (reason: string) => void,
  ) {}

  async start(): Promise<void> {
    await this.reload()
    watchFile(this.path, { interval: 500 }, () => void this.reload())
  }

  async reload(): Promise<void> {
    try {
      this.offer({ policy: await loadPolicyFile(this.path) }, `file ${this.path}`)
    } catch (e) {
      this.rejected(`policy file not applied, the previous policy stays: ${(e as Error).message}`)
    }
  }

  stop(): Promise<void> {
    unwatchFile(this.path)
    return Promise.resolve()
  }
}

/** Paired: the policy server, through the link (which also carries reports and uploads). */
export class ServerPolicySource implements PolicySource {
  constructor(readonly link: ServerLink) {}

  start(knownHash: string | undefined): Promise<void> {
    this.link.start(knownHash)
    return Promise.resolve()
  }

  /** The server pushes every change; there is nothing to read again. */
  reload(): Promise<void> {
    return Promise.resolve()
  }

  stop(): Promise<void> {
    return this.link.stop()
  }
}

/** No file and no server: the last known-good policy only. */
export const KNOWN_GOOD_ONLY: PolicySource = {
  start: () => Promise.resolve(),
  reload: () => Promise.resolve(),
  stop: () => Promise.resolve(),
}
