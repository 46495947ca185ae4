import { afterEach, describe, expect, it } from 'vitest'
import { guardProcess } from './process-guard.js'

/** The test runner's own handlers are set aside while the guard alone handles the events. */
const EVENTS = ['unhandledRejection', 'uncaughtException'] as const
type Listener = (...a: unknown[]) => void
let aside: [string, Listener[]][] = []
const setAside = () => {
  aside = EVENTS.map((e) => [e, process.rawListeners(e) as Listener[]])
  for (const e of EVENTS) process.removeAllListeners(e)
}
afterEach(() => {
  for (const [e, ls] of aside) for (const l of ls) process.on(e as 'unhandledRejection', l)
  aside = []
})

describe('guardProcess', () => {
  it('logs an unhandled rejection and an uncaught exception, and lets go when stopped', () => {
    setAside()
    const logs: Record<string, unknown>[] = []
    const stop = guardProcess((l) => logs.push(l))
    process.emit('unhandledRejection', new Error('boom'), Promise.resolve())
    process.emit('uncaughtException', new Error('bang'))
    process.emit('unhandledRejection', 'a string', Promise.resolve())
    expect(logs).toEqual([
      expect.objectContaining({
        msg: 'unhandled promise rejection (a bug): logged, the agent keeps running',
        error: 'boom',
      }),
      expect.objectContaining({
        msg: 'uncaught exception (a bug): logged, the agent keeps running',
        error: 'bang',
      }),
      {
        msg: 'unhandled promise rejection (a bug): logged, the agent keeps running',
        error: 'a string',
      },
    ])
    stop()
    expect(process.listenerCount('unhandledRejection')).toBe(0)
    expect(process.listenerCount('uncaughtException')).toBe(0)
  })
})
