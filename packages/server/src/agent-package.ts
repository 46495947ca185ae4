import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { AgentArch } from '@palisade/protocol'

/**
 * The agent package `npm run package` writes (by default into the repository's `dist/`, found
 * from this file the same way from src and dist): the one-file agents, the install script and
 * the systemd unit it installs, and a manifest with each file's SHA-256.
 */
export const DEFAULT_AGENT_DIR = fileURLToPath(new URL('../../../dist/', import.meta.url))
export const AGENT_MANIFEST = 'agent-manifest.json'
/** The protocol's list (`npm run package` reads this file without building the protocol). */
export const AGENT_ARCHES = ['x64', 'arm64'] as const satisfies readonly AgentArch[]
export type { AgentArch }
export const agentFileName = (arch: AgentArch) => `palisade-agent-linux-${arch}`

export interface AgentFile {
  readonly os: 'linux'
  readonly arch: AgentArch
  readonly file: string
  readonly sha256: string
  readonly size: number
}

export interface AgentManifest {
  readonly version: string
  /** The Node.js the agent carries. */
  readonly node: string
  readonly built_at: string
  readonly files: readonly AgentFile[]
}

export interface AgentPackage {
  readonly dir: string
  readonly manifest: AgentManifest
  /** `install.sh` with its placeholders (the server fills them per request). */
  readonly installTemplate: string
  readonly unit: string
}

const isFile = (f: unknown, arch: AgentArch): f is AgentFile => {
  const x = f as Partial<AgentFile> | null
  return (
    typeof x === 'object' &&
    x !== null &&
    x.os === 'linux' &&
    x.arch === arch &&
    x.file === agentFileName(arch) &&
    typeof x.sha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(x.sha256) &&
    typeof x.size === 'number'
  )
}

/**
 * The package in `dir`, or undefined when none was built there. A manifest that is there but
 * malformed is an error that says so (a half-written package must not be served).
 */
export async function readAgentPackage(dir: string): Promise<AgentPackage | undefined> {
  let text: string
  try {
    text = await readFile(join(dir, AGENT_MANIFEST), 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw e
  }
  const bad = (why: string) =>
    new Error(`${join(dir, AGENT_MANIFEST)} ${why}: run \`npm run package\` again`)
  let m: Partial<AgentManifest>
  try {
    m = JSON.parse(text) as Partial<AgentManifest>
  } catch {
    throw bad('is not JSON')
  }
  const files = Array.isArray(m.files) ? m.files : []
  if (
    typeof m.version !== 'string' ||
    !/^[0-9A-Za-z.+-]+$/.test(m.version) ||
    files.length === 0 ||
    !files.every((f) => AGENT_ARCHES.some((a) => isFile(f, a)))
  )
    throw bad('is not a manifest of agent files')
  const [installTemplate, unit] = await Promise.all(
    ['install.sh', 'palisade-agent.service'].map((f) => readFile(join(dir, f), 'utf8')),
  )
  return {
    dir,
    manifest: m as AgentManifest,
    installTemplate: installTemplate ?? '',
    unit: unit ?? '',
  }
}

/**
 * `readAgentPackage`, read again only when the manifest changed (its inode, size or times):
 * every status report of an agent ever ordered to upgrade asks for the package, and
 * `npm run package` writes the manifest last, so a new package has a new manifest.
 */
export function agentPackageCache(): (dir: string) => Promise<AgentPackage | undefined> {
  const cached = new Map<string, { key: string; pkg: Promise<AgentPackage | undefined> }>()
  return async (dir) => {
    let key: string
    try {
      const st = await stat(join(dir, AGENT_MANIFEST))
      key = `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
      cached.delete(dir)
      return undefined
    }
    const hit = cached.get(dir)
    if (hit?.key === key) return hit.pkg
    const pkg = readAgentPackage(dir)
    cached.set(dir, { key, pkg })
    // A package that cannot be read is read again next time (it may be half-written).
    pkg.catch(() => cached.get(dir)?.pkg === pkg && cached.delete(dir))
    return pkg
  }
}
