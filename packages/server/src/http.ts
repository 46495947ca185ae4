import type { FastifyReply, FastifyRequest } from 'fastify'
import { randomUUID } from 'node:crypto'
import { forbidden, invalidOne } from './errors.js'
import { datafileHref, jobHref, userHref } from './hrefs.js'
import type { StoredCollection } from './stores/collection.js'

/** Replies with JSON and exactly `Content-Type: application/json` (clients reject a charset). */
export function json(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  // A Buffer body keeps the header as set; a string would get "; charset=utf-8" appended.
  return reply
    .code(status)
    .header('content-type', 'application/json')
    .send(Buffer.from(JSON.stringify(body)))
}

/** Replies with JSON already serialised (a stored document), with the same exact header. */
export function jsonText(reply: FastifyReply, status: number, text: string): FastifyReply {
  return reply.code(status).header('content-type', 'application/json').send(Buffer.from(text))
}

export interface AuthUser {
  readonly id: number
  readonly org: number
  readonly username: string
}

declare module 'fastify' {
  interface FastifyRequest {
    user?: AuthUser
  }
}

/** The org in the path, which must be the caller's own (403 otherwise, as the vendor does). */
export function orgOf(req: FastifyRequest): number {
  const org = Number((req.params as { org?: string }).org)
  if (!req.user || org !== req.user.org)
    throw forbidden(`no access to org ${String((req.params as { org?: string }).org)}`)
  return org
}

export const userActor = (req: FastifyRequest) => ({
  user: { href: userHref(req.user?.id ?? 0), username: req.user?.username ?? '?' },
})

/** `max_results`: absent means 500; 0 means "count only" (clients read X-Total-Count). */
export function maxResults(q: Record<string, unknown>): number {
  const raw = q.max_results
  if (raw === undefined) return 500
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 0)
    throw invalidOne('invalid_max_results', 'max_results must be a whole number from 0')
  return Math.min(n, 100_000)
}

/** Filters a string field: partial, case-insensitive match unless `match_type=exact`. */
export function textMatches(
  value: string | null | undefined,
  wanted: unknown,
  q: Record<string, unknown>,
): boolean {
  if (wanted === undefined) return true
  if (value === null || value === undefined) return false
  const w = typeof wanted === 'string' ? wanted : JSON.stringify(wanted)
  return q.match_type === 'exact' ? value === w : value.toLowerCase().includes(w.toLowerCase())
}

export const boolParam = (x: unknown): boolean | undefined =>
  x === undefined ? undefined : typeof x === 'string' && ['true', 'True', '1', 'yes'].includes(x)

/** Collections done in the background when asked (`Prefer: respond-async`): jobs and datafiles. */
export class AsyncJobs {
  readonly #jobs = new Map<
    string,
    { org: number; requestedAt: string; data: unknown[]; by: string }
  >()

  /** Answers 202 with a relative Location (clients mangle an absolute one) and Retry-After. */
  start(reply: FastifyReply, org: number, data: unknown[], by: string): FastifyReply {
    const id = randomUUID()
    this.#jobs.set(id, { org, requestedAt: new Date().toISOString(), data, by })
    if (this.#jobs.size > 1000) this.#jobs.delete(this.#jobs.keys().next().value as string)
    return reply.code(202).header('location', jobHref(org, id)).header('retry-after', '1').send()
  }

  job(org: number, id: string) {
    const j = this.#jobs.get(id)
    if (!j || j.org !== org) return undefined
    return {
      href: jobHref(org, id),
      job_type: ':illumio/async_requests',
      description: 'collection',
      status: 'done',
      requested_at: j.requestedAt,
      terminated_at: j.requestedAt,
      requested_by: { href: j.by },
      result: { href: datafileHref(org, id) },
    }
  }

  datafile(org: number, id: string): unknown[] | undefined {
    const j = this.#jobs.get(id)
    return j && j.org === org ? j.data : undefined
  }
}

/** The most an async collection (a datafile) holds. */
const ASYNC_MAX = 100_000

/**
 * Replies with a collection: X-Total-Count always, `max_results` cut, or an async job. `view`
 * turns the items into what is sent, and runs only on the items sent.
 */
export async function collection<T>(
  req: FastifyRequest,
  reply: FastifyReply,
  jobs: AsyncJobs,
  org: number,
  all: T[] | StoredCollection<T>,
  view: (items: T[]) => unknown[] | Promise<unknown[]> = (items) => items,
): Promise<FastifyReply> {
  const q = req.query as Record<string, unknown>
  const source = Array.isArray(all)
    ? {
        count: () => Promise.resolve(all.length),
        read: (n: number) => Promise.resolve(all.slice(0, n)),
      }
    : all
  if (String(req.headers.prefer ?? '').includes('respond-async'))
    return jobs.start(
      reply,
      org,
      await view(await source.read(ASYNC_MAX)),
      userHref(req.user?.id ?? 0),
    )
  const max = maxResults(q)
  const total = await source.count()
  return json(reply.header('x-total-count', String(total)), 200, await view(await source.read(max)))
}

/** Reads the JSON body of a write; anything but an object is a 406 with a clear message. */
export function bodyObject(req: FastifyRequest): Record<string, unknown> {
  const b = req.body
  if (typeof b !== 'object' || b === null || Array.isArray(b))
    throw invalidOne('input_validation_error', 'the request body must be a JSON object')
  return b as Record<string, unknown>
}
