/**
 * The agent's last line of defence: a promise rejection or an exception that no one handled
 * is logged, and the agent keeps running. Each owner's work is a loop that starts again on its
 * own (the enforcer's timers, the server link's poll loop), so a fault in one pass is not a
 * silent exit that leaves tamper repair and policy updates stopped.
 */
export function guardProcess(log: (line: Record<string, unknown>) => void): () => void {
  const describe = (e: unknown) =>
    e instanceof Error ? { error: e.message, stack: e.stack } : { error: String(e) }
  const onRejection = (reason: unknown) =>
    log({
      msg: 'unhandled promise rejection (a bug): logged, the agent keeps running',
      ...describe(reason),
    })
  const onException = (e: unknown) =>
    log({ msg: 'uncaught exception (a bug): logged, the agent keeps running', ...describe(e) })
  process.on('unhandledRejection', onRejection)
  process.on('uncaughtException', onException)
  return () => {
    process.off('unhandledRejection', onRejection)
    process.off('uncaughtException', onException)
  }
}
