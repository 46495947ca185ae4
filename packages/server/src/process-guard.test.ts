import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const guard = fileURLToPath(new URL('./process-guard.ts', import.meta.url))

describe('logUnhandledRejections', () => {
  it('logs a rejection nobody handled, and the process goes on to finish its work', async () => {
    // A real process: Node's default for an unhandled rejection is to exit with status 1.
    const script = `
      import { logUnhandledRejections } from ${JSON.stringify(guard)}
      logUnhandledRejections(process, (line) => console.log(JSON.stringify(line)))
      void Promise.reject(new Error('the store went away'))
      setTimeout(() => console.log('still serving'), 50)
    `
    const { stdout } = await run(process.execPath, [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      script,
    ])
    const lines = stdout.trim().split('\n')
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({
      msg: expect.stringMatching(/keeps running/) as string,
      error: expect.stringMatching(/the store went away/) as string,
    })
    expect(lines[1]).toBe('still serving')
  })

  it('without it, the same process ends with status 1 (what the guard prevents)', async () => {
    const script = `
      void Promise.reject(new Error('the store went away'))
      setTimeout(() => console.log('still serving'), 50)
    `
    await expect(
      run(process.execPath, ['--input-type=module', '-e', script]),
    ).rejects.toMatchObject({ code: 1, stdout: '' })
  })
})
