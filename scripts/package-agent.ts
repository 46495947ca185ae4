/**
 * `npm run package`: builds the one-file agent, `dist/palisade-agent-linux-<arch>`, as a Node.js
 * single executable application: the agent's commands bundled by esbuild into one script, its
 * V8 code cache made ahead, both injected (postject) into a stripped copy of the `node` binary
 * that runs this script. Also copies what the server needs to offer it (the install script and
 * the systemd unit) and writes `dist/agent-manifest.json` with the SHA-256 the install script
 * pins. Only the host's architecture is built: SEA needs a `node` binary of the target's
 * architecture and version, and the build machines reach no Node.js download.
 * `--out DIR` writes the package elsewhere than `dist/` (a server takes it with --agent-dir).
 */
import { build } from 'esbuild'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  chmod,
  copyFile,
  mkdir,
  mkdtemp,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs, promisify } from 'node:util'
import { VERSION } from '../packages/cli/src/version.js'
import type { AgentManifest } from '../packages/server/src/agent-package.js'
import { AGENT_MANIFEST, agentFileName } from '../packages/server/src/agent-package.js'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('..', import.meta.url))
/** The fuse Node looks for to know it carries an application (documented for SEA). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'

const step = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
  const t0 = performance.now()
  const r = await f()
  console.log(`package: ${what} (${Math.round(performance.now() - t0)} ms)`)
  return r
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: 'string' } } })
  const outDir = resolve(values.out ?? join(ROOT, 'dist'))
  if (process.platform !== 'linux') throw new Error('the agent is built on Linux, for Linux')
  const arch = process.arch === 'x64' || process.arch === 'arm64' ? process.arch : undefined
  if (!arch) throw new Error(`no agent build for ${process.arch}: x64 and arm64 only`)
  const work = await mkdtemp(join(tmpdir(), 'palisade-package-'))
  try {
    const bundle = join(work, 'agent.cjs')
    await step('bundled the agent commands (esbuild)', () =>
      build({
        entryPoints: [join(ROOT, 'packages/cli/src/agent-main.ts')],
        bundle: true,
        platform: 'node',
        target: 'node20',
        // SEA runs one CommonJS script whose require() reaches only Node's built-in modules.
        format: 'cjs',
        conditions: ['source'],
        outfile: bundle,
        logLevel: 'warning',
      }),
    )
    const blob = join(work, 'agent.blob')
    await writeFile(
      join(work, 'sea.json'),
      JSON.stringify({
        main: bundle,
        output: blob,
        disableExperimentalSEAWarning: true,
        // Compiled ahead: the agent's commands start without parsing the bundle again.
        useCodeCache: true,
      }),
    )
    await step('made the SEA blob', () =>
      run(process.execPath, ['--experimental-sea-config', join(work, 'sea.json')]),
    )
    await mkdir(outDir, { recursive: true })
    const file = agentFileName(arch)
    const out = join(outDir, file)
    const tmp = `${out}.tmp`
    // Node's symbols and debug sections are of no use on a host: 99 MB become 86 MB.
    await step(`copied ${process.execPath} without symbols`, () =>
      run('strip', ['--strip-all', '-o', tmp, process.execPath]).catch((e: Error) => {
        throw new Error(`strip failed (install binutils): ${e.message}`, { cause: e })
      }),
    )
    const postject = createRequire(import.meta.url).resolve('postject/dist/cli.js')
    await step('injected the blob (postject)', () =>
      run(process.execPath, [
        postject,
        tmp,
        'NODE_SEA_BLOB',
        blob,
        '--sentinel-fuse',
        SEA_FUSE,
      ]).catch((e: Error & { stderr?: string }) => {
        throw new Error(`postject failed: ${e.stderr ?? e.message}`, { cause: e })
      }),
    )
    await chmod(tmp, 0o755)
    const { stdout } = await run(tmp, ['--version'], { env: {} })
    if (stdout.trim() !== VERSION)
      throw new Error(`the built agent answered "${stdout.trim()}" to --version, not ${VERSION}`)
    await rename(tmp, out)
    const sha256 = createHash('sha256')
      .update(await readFile(out))
      .digest('hex')
    const size = (await stat(out)).size
    for (const f of ['install.sh', 'palisade-agent.service'])
      await copyFile(join(ROOT, 'packaging', f), join(outDir, f))
    const manifest: AgentManifest = {
      version: VERSION,
      node: process.version,
      built_at: new Date().toISOString(),
      files: [{ os: 'linux', arch, file, sha256, size }],
    }
    await writeFile(join(outDir, AGENT_MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`)
    console.log(
      `package: ${out}: ${(size / 1e6).toFixed(1)} MB, sha256 ${sha256}, Node ${process.version}`,
    )
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}

main().catch((e: Error) => {
  console.error(`package: ${e.message}`)
  process.exit(1)
})
