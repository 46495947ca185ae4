/**
 * The server process outlives a promise nobody awaited that failed: the failure is logged and
 * the process keeps serving (Node's default ends it). The loops that own background work catch
 * their own failures and carry on; this is the net under them, installed by the process that
 * runs the server (the `palisade server` command), not by the library.
 */
export function logUnhandledRejections(
  proc: Pick<NodeJS.Process, 'on'>,
  log: (line: Record<string, unknown>) => void,
): void {
  proc.on('unhandledRejection', (reason: unknown) =>
    log({
      msg: 'a background task failed and nothing handled it; the server keeps running',
      error: reason instanceof Error ? (reason.stack ?? reason.message) : String(reason),
    }),
  )
}
