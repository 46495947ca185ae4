import type { Server } from 'node:http'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ReplyTooLargeError, ServerClient } from './server-client.js'

/** A loopback server: `/chunked/N` streams N bytes without a length, `/sized/N` declares it. */
let server: Server
let url: string
beforeAll(async () => {
  server = createServer((req, res) => {
    const [, how, n] = req.url?.split('/') ?? []
    const size = Number(n)
    if (how === 'sized') res.setHeader('content-length', size)
    res.setHeader('content-type', 'application/json')
    // JSON: a string of `size - 2` characters, in 64 KiB writes
    res.write('"')
    let left = size - 2
    const more = () => {
      while (left > 0) {
        const k = Math.min(left, 65536)
        left -= k
        if (!res.write('x'.repeat(k))) return void res.once('drain', more)
      }
      res.end('"')
    }
    res.on('close', () => (left = 0))
    more()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

describe('ServerClient reply bound', () => {
  const limit = 1024 * 1024

  it('reads a reply within the bound', async () => {
    const r = await new ServerClient({ url }).call(
      'GET',
      `/chunked/${limit}`,
      undefined,
      5000,
      limit,
    )
    expect(r.status).toBe(200)
    expect((r.body as string).length).toBe(limit - 2)
  })

  it.each(['chunked', 'sized'])('refuses a %s reply past the bound, saying so', async (how) => {
    const call = new ServerClient({ url }).call(
      'GET',
      `/${how}/${limit + 1}`,
      undefined,
      5000,
      limit,
    )
    await expect(call).rejects.toThrow(ReplyTooLargeError)
    await expect(call).rejects.toThrow(
      `the reply to GET /${how}/${limit + 1} is larger than ${limit} bytes, so it is refused`,
    )
  })
})
