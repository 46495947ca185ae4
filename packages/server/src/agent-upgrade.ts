/**
 * Upgrade orders: `PUT /orgs/:org/vens/upgrade` names a release (it must be the agent build
 * this server serves) and the VENs to run it; each is told so in the reply to its next status
 * report, while the build it reports differs, and downloads the release from this server.
 */
import type { AgentBuild, UpgradeOrder } from '@palisade/protocol'
import type { AgentPackage } from './agent-package.js'
import { DEFAULT_AGENT_DIR, readAgentPackage } from './agent-package.js'
import { invalidOne } from './errors.js'

/** The package this server serves, or why it serves none (for an API error). */
export async function servedPackage(agentDir: string | undefined): Promise<AgentPackage> {
  const dir = agentDir ?? DEFAULT_AGENT_DIR
  const pkg = await readAgentPackage(dir).catch((e: Error) => {
    throw invalidOne('invalid_release', e.message)
  })
  if (!pkg)
    throw invalidOne(
      'invalid_release',
      `this server serves no agent build (none in ${dir}): run \`npm run package\` in its repository, or start it with --agent-dir DIR`,
    )
  return pkg
}

/** Refuses a release other than the one served: agents could not download it. */
export function checkRelease(pkg: AgentPackage, release: string): void {
  if (release !== pkg.manifest.version)
    throw invalidOne(
      'invalid_release',
      `release ${JSON.stringify(release)} is not the agent build this server serves (${pkg.manifest.version}); upgrade to ${pkg.manifest.version}, or package the release you want on the server`,
    )
}

/**
 * The order for an agent that runs `build` and was told to run `target`, if it must act: the
 * served package is that release, it has the agent's architecture, and the agent runs another.
 */
export function upgradeOrder(
  pkg: Pick<AgentPackage, 'manifest'> | undefined,
  target: string | null,
  build: AgentBuild,
): UpgradeOrder | undefined {
  if (!pkg || target === null || pkg.manifest.version !== target) return undefined
  const file = pkg.manifest.files.find((f) => f.arch === build.arch)
  if (!file || file.sha256 === build.sha256) return undefined
  return { release: target, sha256: file.sha256, size: file.size }
}

/** The releases an upgrade may name: the build this server serves, for the console's choice. */
export async function servedReleases(agentDir: string | undefined) {
  const pkg = await readAgentPackage(agentDir ?? DEFAULT_AGENT_DIR)
  if (!pkg) return []
  const m = pkg.manifest
  return [
    {
      release: m.version,
      node: m.node,
      built_at: m.built_at,
      files: m.files.map((f) => ({ arch: f.arch, sha256: f.sha256, size: f.size })),
    },
  ]
}
