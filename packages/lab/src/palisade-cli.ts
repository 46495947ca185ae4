import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const CLI = fileURLToPath(new URL('../../cli/src/main.ts', import.meta.url))

/**
 * The `ip` arguments that run a TypeScript entry point inside namespace `ns`, from source, so
 * tests exercise the code as written without a build.
 */
export const nodeInNamespace = (
  ns: string,
  script: string,
  args: readonly string[] = [],
): string[] => [
  'netns',
  'exec',
  ns,
  process.execPath,
  '--conditions=source',
  '--import',
  'tsx',
  script,
  ...args,
]

/** The `ip` arguments that run `palisade ARGS` inside namespace `ns`. */
export const palisadeInNamespace = (ns: string, args: readonly string[]): string[] =>
  nodeInNamespace(ns, CLI, args)

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
