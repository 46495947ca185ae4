import { readFile } from 'node:fs/promises'
import { extname, normalize, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { json } from './http.js'

/** The console's built files (`npm run build` makes them); the same path from src and dist. */
const ROOT = fileURLToPath(new URL('../../console/dist/', import.meta.url))

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
}

/** The console talks only to this server; nothing inline runs, nothing frames it. */
const HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
}

async function send(reply: FastifyReply, file: string, cache: string): Promise<FastifyReply> {
  let body: Buffer
  try {
    body = await readFile(file)
  } catch {
    if (file.endsWith('index.html'))
      return json(reply, 503, [
        {
          token: 'console_not_built',
          message: 'the web console is not built: run `npm run build` in the repository',
        },
      ])
    return json(reply, 404, [{ token: 'not_found', message: 'no such console file' }])
  }
  return reply
    .code(200)
    .headers({ ...HEADERS, 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' })
    .header('cache-control', cache)
    .send(body)
}

/** Serves the web console at `/` (its pages are hash routes, so no other path is needed). */
export function registerConsole(app: FastifyInstance): void {
  app.get('/', (_req, reply) => send(reply, `${ROOT}index.html`, 'no-cache'))
  app.get('/assets/*', (req, reply) => {
    const rel = normalize((req.params as { '*': string })['*'])
    if (rel.startsWith('..') || rel.includes(`${sep}..`))
      return json(reply, 404, [{ token: 'not_found', message: 'no such console file' }])
    // Built file names carry a content hash: they never change.
    return send(reply, `${ROOT}assets/${rel}`, 'public, max-age=31536000, immutable')
  })
}
