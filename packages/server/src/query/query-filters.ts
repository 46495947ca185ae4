/**
 * The query string of an API request, checked once before the route runs: every parameter must
 * be one the route takes (the registry), each value of its kind. Routes then read the parsed
 * values through `filtersOf`, whose matchers apply each kind's semantics in one place.
 */
import type { FastifyRequest } from 'fastify'
import { invalid } from '../errors.js'
import type { TextFilter } from '../stores/collection.js'
import type { FilterSpec, FilterValue } from './filter-kinds.js'
import { compareVersions, parseFilter, versionParts } from './filter-kinds.js'
import { filtersOfRoute } from './filter-registry.js'

const API_PREFIX = '/api/v2'

/** `GET /orgs/:org/labels`: how the registry names the route a request reached. */
export function routeKey(req: FastifyRequest): string {
  const method = req.method === 'HEAD' ? 'GET' : req.method
  return `${method} ${req.routeOptions.url?.slice(API_PREFIX.length) ?? ''}`
}

const parsed = new WeakMap<FastifyRequest, Filters>()

/**
 * Checks the request's query parameters against its route's; 406 naming each unknown one (and
 * the route's own) or each malformed value. Runs for every API request.
 */
export function checkQuery(req: FastifyRequest): void {
  const route = routeKey(req)
  const specs = filtersOfRoute(route)
  const byName = new Map(specs.map((s) => [s.name, s]))
  const values = new Map<string, FilterValue>()
  const issues: { token: string; message: string }[] = []
  const shown = `${route.split(' ')[0]} ${req.url.split('?')[0]?.replace(API_PREFIX, '') ?? ''}`
  for (const [name, raw] of Object.entries(req.query as Record<string, unknown>)) {
    const spec = byName.get(name)
    if (!spec) {
      issues.push({
        token: 'unknown_query_parameter',
        message:
          specs.length === 0
            ? `'${name}' is not a parameter of ${shown}: it takes no query parameters`
            : `'${name}' is not a filter of ${shown}; its parameters are: ${specs.map((s) => s.name).join(', ')}`,
      })
      continue
    }
    if (typeof raw !== 'string') {
      issues.push({
        token: 'invalid_query_parameter',
        message: `'${name}' is given more than once; give it once`,
      })
      continue
    }
    const r = parseFilter(spec, raw)
    if (typeof r === 'string') issues.push({ token: 'invalid_query_parameter', message: r })
    else values.set(name, r.value)
  }
  if (issues.length > 0) throw invalid(issues)
  parsed.set(req, new Filters(byName, values))
}

/** The checked query parameters of a request. */
export function filtersOf(req: FastifyRequest): Filters {
  return parsed.get(req) ?? new Filters(new Map(), new Map())
}

/** Whether `value` is in [gte, lte] (ISO strings or numbers); a null never is, when bounded. */
function inBounds<T extends string | number>(
  value: T | null | undefined,
  gte: T | undefined,
  lte: T | undefined,
): boolean {
  if (gte === undefined && lte === undefined) return true
  if (value === null || value === undefined) return false
  return (gte === undefined || value >= gte) && (lte === undefined || value <= lte)
}

/** The parsed parameters of one request, and how each kind matches a value. */
export class Filters {
  constructor(
    private readonly specs: ReadonlyMap<string, FilterSpec>,
    private readonly values: ReadonlyMap<string, FilterValue>,
  ) {}

  has(name: string): boolean {
    return this.values.has(name)
  }

  string(name: string): string | undefined {
    const v = this.values.get(name)
    return typeof v === 'string' ? v : undefined
  }

  bool(name: string): boolean | undefined {
    const v = this.values.get(name)
    return typeof v === 'boolean' ? v : undefined
  }

  int(name: string): number | undefined {
    const v = this.values.get(name)
    return typeof v === 'number' ? v : undefined
  }

  list(name: string): readonly string[] | undefined {
    return this.values.get(name) as readonly string[] | undefined
  }

  labels(name = 'labels'): readonly (readonly string[])[] | undefined {
    return this.values.get(name) as readonly (readonly string[])[] | undefined
  }

  port(name: string): { from: number; to: number } | undefined {
    return this.values.get(name) as { from: number; to: number } | undefined
  }

  /** Whether a partial filter is to match exactly (`match_type=exact`). */
  get exact(): boolean {
    return this.values.get('match_type') === 'exact'
  }

  /** A text filter as the store applies it (see `textFilter`); undefined when not given. */
  textFilter<C extends string>(name: string, column: C): TextFilter<C> | undefined {
    const wanted = this.string(name)
    if (wanted === undefined) return undefined
    return { column, wanted, exact: this.specs.get(name)?.kind !== 'partial' || this.exact }
  }

  /** A text filter on a value in memory: absent, or equal (exact) or a substring (partial). */
  text(name: string, value: string | null | undefined): boolean {
    const f = this.textFilter(name, '')
    if (!f) return true
    if (value === null || value === undefined) return false
    const w = String(f.wanted)
    return f.exact ? value === w : value.toLowerCase().includes(w.toLowerCase())
  }

  /** Any of the values passes the text filter (an absent filter passes all). */
  textAny(name: string, values: readonly (string | null | undefined)[]): boolean {
    return !this.has(name) || values.some((v) => this.text(name, v))
  }

  /** An exact filter (enum, href): absent, or equal. */
  is(name: string, value: string | null | undefined): boolean {
    return !this.has(name) || this.values.get(name) === value
  }

  /** A bool filter: absent, or equal. */
  flag(name: string, value: boolean): boolean {
    return !this.has(name) || this.values.get(name) === value
  }

  /** `labels`: absent, or any inner list whose labels the object's all match. */
  labelsMatch(has: (href: string) => boolean, name = 'labels'): boolean {
    const wanted = this.labels(name)
    return wanted === undefined || wanted.some((group) => group.every(has))
  }

  /** `<name>[gte]` and `<name>[lte]` on an ISO time (a null never matches a bound). */
  timeRange(name: string, value: string | null | undefined): boolean {
    return inBounds(value, this.string(`${name}[gte]`), this.string(`${name}[lte]`))
  }

  /** `<name>[gte]` and `<name>[lte]` on a number. */
  intRange(name: string, value: number | null | undefined): boolean {
    return inBounds(value, this.int(`${name}[gte]`), this.int(`${name}[lte]`))
  }

  /** `<name>[gte]` and `<name>[lte]` on a dotted version. */
  versionRange(name: string, value: string | null | undefined): boolean {
    const gte = this.string(`${name}[gte]`)
    const lte = this.string(`${name}[lte]`)
    if (gte === undefined && lte === undefined) return true
    const v = value ? versionParts(value) : undefined
    if (!v) return false
    const cmp = (bound: string) => compareVersions(v, versionParts(bound) ?? [])
    return (gte === undefined || cmp(gte) >= 0) && (lte === undefined || cmp(lte) <= 0)
  }

  /** A port filter: absent, or one of the ranges overlaps it (a -1 range is every port). */
  portOverlaps(name: string, ranges: readonly { from: number; to: number }[]): boolean {
    const p = this.port(name)
    if (!p) return true
    return ranges.some((r) =>
      r.from === -1 || p.from === -1 ? true : r.from <= p.to && p.from <= r.to,
    )
  }
}
