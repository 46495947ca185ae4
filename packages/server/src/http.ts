import type { FastifyReply, FastifyRequest } from 'fastify'
import { randomUUID } from 'node:crypto'
import { forbidden, invalidOne } from './errors.js'
import { datafileHref, jobHref, userHref } from './hrefs.js'
import { filtersOf } from './query/query-filters.js'
import type { StoredCollection } from './stores/collection.js'
import type { Db } from './stores/db.js'
import type { JobRow } from './stores/jobs.js'
import { insertJob } from './stores/jobs.js'

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
  /** The hash of the API session token the request came with (session login). */
  readonly session?: string
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

/** How many items a collection sends: by default, and at most (the vendor's, per collection). */
export interface PageSize {
  readonly default: number
  readonly max: number
}
const PAGE: PageSize = { default: 500, max: 100_000 }

/** `max_results` (checked by the route's query filters): absent means the default. */
function maxResults(req: FastifyRequest, page: PageSize): number {
  const n = filtersOf(req).int('max_results')
  return n === undefined ? page.default : Math.min(n, page.max)
}

/** Collections done in the background when asked (`Prefer: respond-async`): jobs and datafiles. */
export class AsyncJobs {
  constructor(private readonly db: Db) {}

  /**
   * Stores the datafile a page at a time, then answers 202 with a relative Location (clients
   * mangle an absolute one) and Retry-After.
   */
  async start(
    reply: FastifyReply,
    org: number,
    pages: AsyncIterable<readonly unknown[]>,
    by: string,
  ): Promise<FastifyReply> {
    const id = randomUUID()
    const at = new Date().toISOString()
    await insertJob(
      this.db,
      {
        id,
        org_id: org,
        job_type: ':illumio/async_requests',
        description: 'collection',
        status: 'running',
        requested_at: at,
        requested_by: by,
        terminated_at: null,
      },
      pages,
    )
    return reply.code(202).header('location', jobHref(org, id)).header('retry-after', '1').send()
  }
}

/** A job as the API shows it. */
export function jobView(j: JobRow) {
  return {
    href: jobHref(j.org_id, j.id),
    job_type: j.job_type,
    description: j.description,
    status: j.status,
    requested_at: j.requested_at,
    terminated_at: j.terminated_at,
    requested_by: { href: j.requested_by },
    result: j.status === 'done' ? { href: datafileHref(j.org_id, j.id) } : null,
  }
}

/** The most an async collection (a datafile) holds. */
const ASYNC_MAX = 100_000
/** The items a datafile is built from at a time. */
const ASYNC_PAGE = 1000

/**
 * The first `max` items of a collection, turned into what is sent, a page at a time (read a page
 * at a time when the store can).
 */
async function* pagesOf<T>(
  source: StoredCollection<T>,
  view: (items: T[]) => unknown[] | Promise<unknown[]>,
  max: number,
): AsyncIterable<unknown[]> {
  let left = max
  const pages = source.pages?.(ASYNC_PAGE) ?? [await source.read(max)]
  for await (const rows of pages) {
    for (let i = 0; i < rows.length && left > 0; i += ASYNC_PAGE) {
      const page = rows.slice(i, i + Math.min(ASYNC_PAGE, left))
      left -= page.length
      yield await view(page)
    }
    if (left <= 0) return
  }
}

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
  page: PageSize = PAGE,
): Promise<FastifyReply> {
  const source: StoredCollection<T> = Array.isArray(all)
    ? {
        count: () => Promise.resolve(all.length),
        read: (n: number) => Promise.resolve(all.slice(0, n)),
      }
    : all
  if (String(req.headers.prefer ?? '').includes('respond-async'))
    return jobs.start(reply, org, pagesOf(source, view, ASYNC_MAX), userHref(req.user?.id ?? 0))
  const max = maxResults(req, page)
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
