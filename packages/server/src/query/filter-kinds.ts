/**
 * The kinds of query parameter the API takes, and how a raw value of each is read. Pure: a bad
 * value is an error message naming the parameter, the value and the form expected.
 */

export type FilterKind =
  /** Text matched as a case-insensitive substring (`match_type=exact` makes it exact). */
  | 'partial'
  /** Text matched exactly. */
  | 'exact'
  /** An href matched exactly. */
  | 'href'
  | 'bool'
  | 'int'
  /** One of `values`. */
  | 'enum'
  /** A time: RFC 3339, or seconds since 1970. */
  | 'time'
  /** A JSON list of lists of label hrefs: any inner list whose labels all match. */
  | 'labels'
  /** A JSON list of strings (of `values`, when given). */
  | 'list'
  /** A port (-1 to 65535) or a range `from-to`. */
  | 'port'
  /** A dotted version (`21.5.30`, `21.5.30-8527`). */
  | 'version'
  /** A representation flag (true or false): it shapes the answer, it filters nothing. */
  | 'flag'
  /** Taken and documented, with no effect on the answer (see the spec's note). */
  | 'accepted'

export interface FilterSpec {
  readonly name: string
  readonly kind: FilterKind
  readonly values?: readonly string[]
  /** What Palisade does with it where that is not the plain reading of the vendor's docs. */
  readonly note?: string
  /** Palisade's own parameter, not the vendor's. */
  readonly palisade?: true
  readonly min?: number
  readonly max?: number
  /** Added to the message of a bad value: what to do instead. */
  readonly hint?: string
}

/** A parsed value: what the accessors of each kind return. */
export type FilterValue =
  | string
  | number
  | boolean
  | readonly string[]
  | readonly (readonly string[])[]
  | { readonly from: number; readonly to: number }

const TRUE = ['true', 'True', 'TRUE', '1']
const FALSE = ['false', 'False', 'FALSE', '0']

/** A time parameter as an ISO string; undefined when it is not a time. */
export function timeOf(raw: string): string | undefined {
  if (/^\d+$/.test(raw)) return new Date(Number(raw) * 1000).toISOString()
  const t = Date.parse(raw)
  return Number.isNaN(t) ? undefined : new Date(t).toISOString()
}

const jsonOf = (raw: string): unknown => {
  try {
    return JSON.parse(raw) as unknown
  } catch {
    return undefined
  }
}

/** A dotted version as numbers to compare segment by segment (`21.5.30-8527` → 21,5,30,8527). */
export function versionParts(v: string): number[] | undefined {
  return /^\d+(\.\d+)*(-\d+)?$/.test(v) ? v.split(/[.-]/).map(Number) : undefined
}

/** -1, 0 or 1 as dotted version `a` is below, equal to or above `b`. */
export function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0)
    if (d !== 0) return Math.sign(d)
  }
  return 0
}

/** Reads a raw value of a parameter; a string is the message of what is wrong with it. */
export function parseFilter(spec: FilterSpec, raw: string): { value: FilterValue } | string {
  const bad = (expected: string) =>
    `'${spec.name}' cannot be "${raw.length > 80 ? `${raw.slice(0, 80)}…` : raw}": ${expected}${spec.hint ? `; ${spec.hint}` : ''}`
  switch (spec.kind) {
    case 'partial':
    case 'exact':
    case 'href':
    case 'accepted':
      return { value: raw }
    case 'bool':
    case 'flag':
      if (TRUE.includes(raw)) return { value: true }
      if (FALSE.includes(raw)) return { value: false }
      return bad('it takes true or false')
    case 'int': {
      const n = Number(raw)
      const min = spec.min ?? Number.MIN_SAFE_INTEGER
      const max = spec.max ?? Number.MAX_SAFE_INTEGER
      return /^-?\d+$/.test(raw) && n >= min && n <= max
        ? { value: n }
        : bad(
            `it takes a whole number${spec.min !== undefined ? ` from ${min}` : ''}${spec.max !== undefined ? ` to ${max}` : ''}`,
          )
    }
    case 'enum':
      return (spec.values ?? []).includes(raw)
        ? { value: raw }
        : bad(`it takes one of ${(spec.values ?? []).join(', ')}`)
    case 'time': {
      const t = timeOf(raw)
      return t === undefined
        ? bad('it takes an RFC 3339 time (2025-01-31T08:00:00Z) or seconds since 1970')
        : { value: t }
    }
    case 'labels': {
      const v = jsonOf(raw)
      const ok =
        Array.isArray(v) &&
        v.every(
          (g) =>
            Array.isArray(g) && g.every((h) => typeof h === 'string' && h.startsWith('/orgs/')),
        )
      return ok
        ? { value: v as string[][] }
        : bad(
            'it takes a JSON list of lists of label hrefs, e.g. [["/orgs/1/labels/1","/orgs/1/labels/7"]]',
          )
    }
    case 'list': {
      const v = jsonOf(raw)
      const values = spec.values
      const ok =
        Array.isArray(v) &&
        v.every((x) => typeof x === 'string' && (values === undefined || values.includes(x)))
      return ok
        ? { value: v as string[] }
        : bad(
            `it takes a JSON list of strings${values ? ` of ${values.join(', ')}` : ''}, e.g. ${JSON.stringify(values?.slice(0, 2) ?? ['a'])}`,
          )
    }
    case 'port': {
      const m = /^(-?\d+)(?:-(\d+))?$/.exec(raw)
      const from = Number(m?.[1])
      const to = m?.[2] === undefined ? from : Number(m[2])
      return m && from >= -1 && from <= 65535 && to >= from && to <= 65535
        ? { value: { from, to } }
        : bad('it takes a port from -1 to 65535, or a range such as 8000-8080')
    }
    case 'version':
      return versionParts(raw)
        ? { value: raw }
        : bad('it takes a dotted version such as 21.5.30 or 21.5.30-8527')
  }
}
