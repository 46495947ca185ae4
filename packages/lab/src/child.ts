import type { ChildProcess } from 'node:child_process'

/** Stops a lab process: `signal` first, SIGKILL if it is still there after 5 s. */
export async function stopChild(
  child: ChildProcess | undefined,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return
  await new Promise<void>((resolve) => {
    child.once('close', () => resolve())
    child.kill(signal)
    setTimeout(() => child.kill('SIGKILL'), 5000).unref()
  })
}
