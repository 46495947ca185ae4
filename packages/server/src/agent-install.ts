import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import type { FastifyInstance } from 'fastify'
import { agentDownloadRoute } from '@palisade/protocol'
import type { AgentFile, AgentPackage } from './agent-package.js'
import {
  AGENT_ARCHES,
  agentFileName,
  DEFAULT_AGENT_DIR,
  readAgentPackage,
} from './agent-package.js'
import { ApiError } from './errors.js'

/**
 * The agent as one file, installed from this server the way the vendor's pairing script does
 * it: `GET /agent/install.sh` (no auth) is a shell script that carries this server's CA and
 * the SHA-256 of the agent this server was packaged with; it downloads
 * `GET /agent/palisade-agent-linux-<arch>`, checks it, installs, activates and starts it.
 */
export interface AgentInstallContext {
  /** Where `npm run package` wrote the package (default: the repository's `dist/`). */
  readonly agentDir?: string
  /** The CA the agents pin; without TLS there is nothing to pin and no install script. */
  readonly caCertFile?: string
}

const unavailable = (message: string) =>
  new ApiError(404, [{ token: 'agent_install_unavailable', message }])

/** The `host[:port]` a client reached us by, if it is safe to write into a shell script. */
export function reachedAs(host: string | undefined): string | undefined {
  return host && /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?$/.test(host) ? host : undefined
}

/** Why no install script can be served, or the package and CA to serve it from. */
async function installable(
  ctx: AgentInstallContext,
): Promise<{ pkg: AgentPackage; caFile: string } | { why: string }> {
  if (!ctx.caCertFile)
    return {
      why: 'the install script needs TLS (the agent pins this server’s CA): start the server with --tls auto',
    }
  const dir = ctx.agentDir ?? DEFAULT_AGENT_DIR
  let pkg: AgentPackage | undefined
  try {
    pkg = await readAgentPackage(dir)
  } catch (e) {
    return { why: (e as Error).message }
  }
  if (!pkg)
    return {
      why: `this server has no agent package in ${dir}: run \`npm run package\` in its repository (it writes dist/${agentFileName('x64')}), or start it with --agent-dir DIR`,
    }
  return { pkg, caFile: ctx.caCertFile }
}

/** What follows the command in a heredoc must not end it early. */
function heredocBody(text: string, end: string): string {
  if (text.split('\n').includes(end))
    throw new Error(`the install script cannot carry a "${end}" line`)
  return text.trimEnd()
}

/** The install script for a client that reached this server as `server`. */
export function renderInstallScript(pkg: AgentPackage, server: string, caPem: string): string {
  const fill: Record<string, string> = {
    '@PALISADE_SERVER@': server,
    '@PALISADE_VERSION@': pkg.manifest.version,
    '@PALISADE_AGENT_SHA256@': pkg.manifest.files
      .map((f) => `sha256_${f.arch}=${f.sha256}`)
      .join('\n'),
    '@PALISADE_CA_PEM@': heredocBody(caPem, 'PALISADE_CA'),
    '@PALISADE_AGENT_UNIT@': heredocBody(pkg.unit, 'PALISADE_UNIT'),
  }
  // A function replacement: the values are inserted as they are (no `$&` patterns).
  return pkg.installTemplate.replace(/@PALISADE_[A-Z0-9_]+@/g, (k) => fill[k] ?? k)
}

/**
 * The one-liner that installs and pairs a host with `code` (the Pairing page and the
 * `pairing_key` reply show it), or why there is none.
 */
export async function installCommand(
  ctx: AgentInstallContext,
  host: string | undefined,
  code: string,
): Promise<{ install_command: string | null; install_unavailable?: string }> {
  const server = reachedAs(host)
  const i = await installable(ctx)
  if ('why' in i) return { install_command: null, install_unavailable: i.why }
  if (!server)
    return { install_command: null, install_unavailable: 'the request named no usable Host' }
  return {
    install_command: `curl -fsS --cacert ${i.caFile} https://${server}/agent/install.sh | sudo sh -s -- --activation-code ${code}`,
  }
}

/** Files checked against the manifest, by path: the stat they had when their hash matched. */
const verified = new Map<string, string>()

async function matchesManifest(path: string, f: AgentFile): Promise<boolean> {
  const st = await stat(path)
  const key = `${st.mtimeMs}:${st.size}:${f.sha256}`
  if (verified.get(path) === key) return true
  const hash = createHash('sha256')
  await pipeline(createReadStream(path), hash)
  if (hash.digest('hex') !== f.sha256) return false
  verified.set(path, key)
  return true
}

export function registerAgentInstall(app: FastifyInstance, ctx: AgentInstallContext): void {
  app.get('/agent/install.sh', async (req, reply) => {
    const i = await installable(ctx)
    if ('why' in i) throw unavailable(i.why)
    const server = reachedAs(req.headers.host)
    if (!server)
      throw unavailable(
        'the request named no usable Host: ask for https://HOST:PORT/agent/install.sh',
      )
    const script = renderInstallScript(i.pkg, server, await readFile(i.caFile, 'utf8'))
    return reply
      .code(200)
      .header('content-type', 'text/x-shellscript; charset=utf-8')
      .header('cache-control', 'no-store')
      .send(script)
  })

  for (const arch of AGENT_ARCHES) {
    app.get(agentDownloadRoute(arch), async (_req, reply) => {
      const i = await installable(ctx)
      if ('why' in i) throw unavailable(i.why)
      const f = i.pkg.manifest.files.find((x) => x.arch === arch)
      if (!f) throw unavailable(`this server's agent package has no linux-${arch} build`)
      const path = join(i.pkg.dir, f.file)
      // The hash the install script pins is the packager's: a file changed since is not served.
      if (!(await matchesManifest(path, f)))
        throw new ApiError(500, [
          {
            token: 'agent_package_corrupt',
            message: `${path} does not match the SHA-256 in its manifest: run \`npm run package\` again`,
          },
        ])
      return reply
        .code(200)
        .header('content-type', 'application/octet-stream')
        .header('content-length', String(f.size))
        .header('cache-control', 'no-store')
        .send(createReadStream(path))
    })
  }
}
