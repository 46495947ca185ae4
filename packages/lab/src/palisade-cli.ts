import { spawn } from 'node:child_process'
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * Lab processes run the code the way this module runs: from source under tests and benchmarks
 * (so they exercise the code as written, without a build), from the build under `palisade demo`
 * and where PALISADE_LAB_BUILD=1 asks for it (benchmarks of the agent's memory: the source's
 * on-the-fly compiler would count in it).
 */
const fromSource = () =>
  extname(fileURLToPath(import.meta.url)) === '.ts' && process.env.PALISADE_LAB_BUILD !== '1'
const cli = () =>
  fileURLToPath(
    new URL(fromSource() ? '../../cli/src/main.ts' : '../../cli/dist/main.js', import.meta.url),
  )

/** The `ip` arguments that run a Node.js entry point (this module's sibling) inside `ns`. */
export const nodeInNamespace = (
  ns: string,
  script: string,
  args: readonly string[] = [],
): string[] => [
  'netns',
  'exec',
  ns,
  process.execPath,
  ...(extname(script) === '.ts' ? ['--conditions=source', '--import', 'tsx'] : []),
  script,
  ...args,
]

/** The `ip` arguments that run `palisade ARGS` inside namespace `ns`. */
export const palisadeInNamespace = (ns: string, args: readonly string[]): string[] =>
  nodeInNamespace(ns, cli(), args)

/** Runs `palisade ARGS` inside the namespace to its end; returns its exit code and output. */
export function runPalisade(
  ns: string,
  args: readonly string[],
): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('ip', palisadeInNamespace(ns, args))
    let out = ''
    child.stdout.on('data', (b: Buffer) => (out += b.toString()))
    child.stderr.on('data', (b: Buffer) => (out += b.toString()))
    child.on('close', (code) => resolve({ code: code ?? -1, out }))
  })
}
