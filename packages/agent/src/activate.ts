import { copyFile, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import type { Runner } from './exec.js'
import { hostInterfaces, readOsRelease } from './host-facts.js'
import { replyError } from './server-client.js'
import { FailoverClient, serverUrlsOf } from './server-failover.js'
import type { AgentConfig } from './agent-config.js'
import { ensureStateDir, readJson, writeJson } from './state-dir.js'
import { migrateStateDir } from './state-format.js'
import type { Backend } from '@palisade/firewall'
import { describeIssues } from '@palisade/model'
import type { ActivateRequest } from '@palisade/protocol'
import { activateRoute, checkActivateReply } from '@palisade/protocol'

export interface ActivateOptions {
  readonly managementServer: string
  readonly activationCode: string
  readonly caCert: string
  readonly stateDir: string
  readonly backend?: Backend | 'auto'
  /** The name the workload gets (default: this machine's hostname). */
  readonly hostname?: string
  readonly run: Runner
  /** This agent's version, recorded with the state dir's format. */
  readonly version: string
}

/**
 * Pairs this host with a policy server: the activation code buys this agent its own credential,
 * kept (0600) in the state dir with a copy of the server's CA, which the agent pins from then on.
 */
export async function activate(
  o: ActivateOptions,
): Promise<{ agentId: string; workloadHref: string }> {
  const paths = await ensureStateDir(o.stateDir)
  // A dir left by an older agent is migrated first; one from a newer agent is refused.
  await migrateStateDir(paths, o.version)
  // Any server of a cluster can pair the host; all of them are kept for the channel.
  const urls = serverUrlsOf(o.managementServer)
  const os = await readOsRelease()
  const client = new FailoverClient({ urls, caCertFile: o.caCert, log: () => undefined })
  const r = await client.call('POST', activateRoute(), {
    activation_code: o.activationCode,
    hostname: o.hostname ?? hostname(),
    os_platform: 'linux',
    os_detail: os.prettyName,
    interfaces: await hostInterfaces(o.run),
  } satisfies ActivateRequest)
  const url = client.url
  if (r.status !== 201) throw new Error(`activation refused by ${url}: ${replyError(r)}`)
  const reply = checkActivateReply(r.body)
  if (!reply.ok)
    throw new Error(
      `${url} answered the activation with something this agent cannot use; nothing was saved:\n${describeIssues(reply.issues)}`,
    )
  const body = reply.value
  const ca = join(paths.dir, 'server-ca.crt')
  await copyFile(o.caCert, ca)
  await writeFile(
    join(paths.dir, 'credentials.json'),
    `${JSON.stringify({ token: body.token })}\n`,
    { mode: 0o600 },
  )
  // Only what differs from the defaults (state format 2).
  const config: Partial<AgentConfig> = {
    ...(await readJson<Partial<AgentConfig>>(paths.config)),
    ...(o.backend && { backend: o.backend }),
    server: {
      url: urls[0] as string,
      ...(urls.length > 1 && { urls }),
      caCertFile: ca,
      agentId: body.agent_id,
    },
  }
  await writeJson(paths.config, config)
  return { agentId: body.agent_id, workloadHref: body.workload_href }
}
