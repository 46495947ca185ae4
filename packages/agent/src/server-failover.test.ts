import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import type { Server } from 'node:http'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { agentDownloadRoute } from '@palisade/protocol'
import { describe, expect, it } from 'vitest'
import type { Reply } from './server-client.js'
import { download, ServerUnavailableError } from './server-client.js'
import { FailoverClient, serverEndpoints, serverUrlsOf } from './server-failover.js'

describe('--management-server', () => {
  it.each([
    ['198.18.0.1:8443', ['https://198.18.0.1:8443']],
    ['198.18.0.1:8443, 198.18.0.2:8443', ['https://198.18.0.1:8443', 'https://198.18.0.2:8443']],
    ['[2001:db8::1]:8443,pce.example:443', ['https://[2001:db8::1]:8443', 'https://pce.example']],
  ])('%s is %j', (spec, urls) => {
    expect(serverUrlsOf(spec)).toEqual(urls)
  })

  it.each(['', ' , ', 'a:8443/x', 'user@a:8443', 'a:99999'])('refuses %j', (spec) => {
    expect(() => serverUrlsOf(spec)).toThrow(/--management-server/)
  })

  it('gives the failsafe every listed server', () => {
    const urls = serverUrlsOf('198.18.0.1:8443,[2001:db8::1]:9443')
    expect(serverEndpoints({ url: urls[0] as string, urls })).toEqual([
      { address: '198.18.0.1', port: 8443 },
      { address: '2001:db8::1', port: 9443 },
    ])
    expect(serverEndpoints({ url: 'https://198.18.0.9:8443' })).toEqual([
      { address: '198.18.0.9', port: 8443 },
    ])
  })
})

/** Servers that answer, or are down (the connection fails), as the test says. */
class Servers {
  readonly down = new Set<string>()
  readonly calls: string[] = []
  readonly names: (string | undefined)[] = []
  readonly args: unknown[][] = []
  connect = (t: { url: string; name?: string }) => ({
    call: (...args: unknown[]): Promise<Reply> => {
      this.args.push(args)
      this.calls.push(t.url)
      this.names.push(t.name)
      if (this.down.has(t.url))
        return Promise.reject(new ServerUnavailableError(`cannot reach ${t.url}: ECONNREFUSED`))
      return Promise.resolve({ status: 200, body: t.url })
    },
    stream: () => Promise.reject(new Error('these servers serve no downloads')),
  })
}

describe('an agent with several servers', () => {
  const A = 'https://198.18.0.1:8443'
  const B = 'https://198.18.0.2:8443'
  const C = 'https://198.18.0.3:8443'

  it('stays with the server that answers, and moves at once to the next when it cannot be reached', async () => {
    const s = new Servers()
    const moves: unknown[] = []
    const c = new FailoverClient({
      urls: [A, B, C],
      caCertFile: 'ca.crt',
      log: (l) => moves.push(l),
      connect: s.connect,
    })
    expect((await c.call('GET', '/x')).body).toBe(A)
    expect((await c.call('GET', '/x')).body).toBe(A)
    s.down.add(A)
    expect((await c.call('GET', '/x')).body).toBe(B)
    expect(c.url).toBe(B)
    // A is back, but the agent stays where it is
    s.down.delete(A)
    expect((await c.call('GET', '/x')).body).toBe(B)
    // round the list: from C back to A
    s.down.add(B)
    s.down.add(C)
    expect((await c.call('GET', '/x')).body).toBe(A)
    expect(s.calls).toEqual([A, A, A, B, B, B, C, A])
    expect(moves).toEqual([
      { msg: 'moved to another policy server', from: A, to: B },
      { msg: 'moved to another policy server', from: B, to: A },
    ])
  })

  it('fails with the last error when no server answers, and passes other failures on untried elsewhere', async () => {
    const s = new Servers()
    s.down.add(A)
    s.down.add(B)
    const c = new FailoverClient({
      urls: [A, B],
      caCertFile: 'ca.crt',
      log: () => undefined,
      connect: s.connect,
    })
    await expect(c.call('GET', '/x')).rejects.toThrow(`cannot reach ${B}`)
    const broken = new FailoverClient({
      urls: [A, B],
      caCertFile: 'ca.crt',
      log: () => undefined,
      connect: () => ({
        call: () => Promise.reject(new Error('CA file unreadable')),
        stream: () => Promise.reject(new Error('CA file unreadable')),
      }),
    })
    await expect(broken.call('GET', '/x')).rejects.toThrow('CA file unreadable')
  })

  it('tries every address of a name, checking the certificate against the name, and resolves it again when none answers', async () => {
    const s = new Servers()
    const answers = [['198.18.0.1', '198.18.0.2'], ['198.18.0.3']]
    let resolved = 0
    const c = new FailoverClient({
      urls: ['https://pce.example:8443'],
      caCertFile: 'ca.crt',
      log: () => undefined,
      connect: s.connect,
      resolve: (name) => {
        expect(name).toBe('pce.example')
        return Promise.resolve(answers[resolved++] ?? [])
      },
    })
    s.down.add(A)
    expect((await c.call('GET', '/x')).body).toBe(B)
    expect(s.names).toEqual(['pce.example', 'pce.example'])
    // both addresses stop answering; the name now has another
    s.down.add(B)
    expect((await c.call('GET', '/x')).body).toBe(C)
    expect(resolved).toBe(2)
    expect(s.calls).toEqual([A, B, B, A, C])
  })
})

describe('a call through the failover client', () => {
  it('passes every argument on, the reply bound too (a hostile server cannot send more)', async () => {
    const s = new Servers()
    const c = new FailoverClient({
      urls: ['https://198.18.0.1:8443'],
      caCertFile: 'ca.crt',
      log: () => undefined,
      connect: s.connect,
    })
    await c.call('GET', '/p', undefined, 1000, 1024)
    expect(s.args).toEqual([['GET', '/p', undefined, 1000, 1024]])
  })
})

describe('a download through the failover client (an upgrade)', () => {
  const listen = async (s: Server) => {
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
    return `http://127.0.0.1:${(s.address() as AddressInfo).port}`
  }
  const close = (s: Server) => new Promise<void>((r) => s.close(() => r()))

  it('comes from the next listed server that answers when the first cannot be reached', async () => {
    // The first server stopped: its port refuses connections.
    const gone = createServer()
    const dead = await listen(gone)
    await close(gone)
    const build = Buffer.from('a build of the agent\n'.repeat(1000))
    const asked: string[] = []
    const live = createServer((req, res) => {
      asked.push(`${req.method} ${req.url} ${req.headers.authorization}`)
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(build)
    })
    const url = await listen(live)
    const dir = await mkdtemp(join(tmpdir(), 'palisade-failover-download-'))
    try {
      const moves: unknown[] = []
      const c = new FailoverClient({
        urls: [dead, url],
        caCertFile: '',
        authorization: 'Bearer t',
        log: (l) => moves.push(l),
      })
      const route = agentDownloadRoute('x64')
      const got = await download(c, route, join(dir, 'new'), build.length)
      expect(got).toEqual({
        ok: true,
        size: build.length,
        sha256: createHash('sha256').update(build).digest('hex'),
      })
      expect((await readFile(join(dir, 'new'))).equals(build)).toBe(true)
      expect(asked).toEqual([`GET ${route} Bearer t`])
      expect(c.url, 'it stays with the server that answered').toBe(url)
      // That server stops too: nothing answers, and the download says so.
      await close(live)
      await expect(download(c, route, join(dir, 'again'), build.length)).rejects.toThrow(
        ServerUnavailableError,
      )
      expect(moves).toEqual([])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
