import type { Server, Socket } from 'node:net'
import { createConnection, createServer } from 'node:net'

/**
 * A TCP port on this machine (e.g. 127.0.0.1:8443) whose connections are carried to a unix
 * socket, which a relay inside a lab namespace carries on to a server there (LabPeer.relay).
 * This is how a browser on the host reaches a server in a namespace without a route, an
 * interface or a firewall rule added to the host's own network.
 */
export async function forwardPort(
  host: string,
  port: number,
  socketPath: string,
): Promise<{ readonly port: number; close(): Promise<void> }> {
  const open = new Set<Socket>()
  const server: Server = createServer((c) => {
    const up = createConnection({ path: socketPath })
    for (const s of [c, up]) {
      open.add(s)
      s.on('close', () => open.delete(s))
    }
    c.on('error', () => up.destroy())
    up.on('error', () => c.destroy())
    c.pipe(up).pipe(c)
  })
  await new Promise<void>((ok, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      fail(
        e.code === 'EADDRINUSE'
          ? new Error(`${host}:${port} is in use: choose another with --listen HOST:PORT`)
          : e,
      ),
    )
    server.listen({ host, port }, ok)
  })
  const bound = server.address()
  return {
    port: typeof bound === 'object' && bound ? bound.port : port,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve())
        for (const s of open) s.destroy()
      }),
  }
}
