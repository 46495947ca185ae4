/**
 * Checking documents that come from outside (an API body, an agent message, a policy file):
 * every problem is collected with the JSON path where it is, so a caller can say all of them at
 * once. The server turns the problems into its 406 reply, the agent into an error.
 */

/** One problem with a document: where it is (a JSON path such as `$.rules[0].peers`) and what. */
export interface Issue {
  readonly path: string
  readonly message: string
  /** What kind of problem, for API replies; absent: `input_validation_error`. */
  readonly token?: string
}

/** A checked document: the value it stands for, or every problem found in it. */
export type Checked<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly issues: readonly Issue[] }

/** Issues as lines for people: `path: message`, one per line. */
export const describeIssues = (issues: readonly Issue[]): string =>
  issues.map((i) => `${i.path}: ${i.message}`).join('\n')

export type Doc = Record<string, unknown>
export const isObj = (x: unknown): x is Doc =>
  typeof x === 'object' && x !== null && !Array.isArray(x)

/** Collects every problem with a document; each method returns the value only when it is valid. */
export class Checker {
  readonly issues: Issue[] = []

  fail(path: string, message: string, token?: string): undefined {
    this.issues.push({ path, message, ...(token !== undefined && { token }) })
    return undefined
  }

  object(x: unknown, path: string): Doc | undefined {
    return isObj(x) ? x : this.fail(path, 'must be a JSON object')
  }

  /** Refuses properties the object does not have, so a typo is an error, not a silent no-op. */
  only(o: Doc, path: string, allowed: readonly string[]): void {
    for (const k of Object.keys(o))
      if (!allowed.includes(k))
        this.fail(`${path}.${k}`, `unknown property; allowed: ${allowed.join(', ')}`)
  }

  string(
    o: Doc,
    key: string,
    path: string,
    opts: { required?: boolean; max?: number; min?: number; nullable?: boolean } = {},
  ): string | undefined {
    const v = o[key]
    // An explicit null would erase a field: only those that may be empty accept it.
    if (v === null && !opts.nullable) return this.fail(`${path}.${key}`, 'cannot be null')
    if (v === undefined || v === null)
      return opts.required ? this.fail(`${path}.${key}`, 'is required') : undefined
    if (typeof v !== 'string') return this.fail(`${path}.${key}`, 'must be a string')
    if (v.length < (opts.min ?? (opts.required ? 1 : 0)))
      return this.fail(`${path}.${key}`, `must have at least ${opts.min ?? 1} character(s)`)
    if (v.length > (opts.max ?? 255))
      return this.fail(`${path}.${key}`, `must have at most ${opts.max ?? 255} characters`)
    return v
  }

  bool(
    o: Doc,
    key: string,
    path: string,
    opts: { required?: boolean; nullable?: boolean } = {},
  ): boolean | undefined {
    const v = o[key]
    // An explicit null would erase a field: only those that may be empty accept it.
    if (v === null && !opts.nullable) return this.fail(`${path}.${key}`, 'cannot be null')
    if (v === undefined || v === null)
      return opts.required ? this.fail(`${path}.${key}`, 'is required') : undefined
    return typeof v === 'boolean' ? v : this.fail(`${path}.${key}`, 'must be true or false')
  }

  int(
    o: Doc,
    key: string,
    path: string,
    opts: { required?: boolean; min?: number; max?: number; nullable?: boolean } = {},
  ): number | undefined {
    const v = o[key]
    // An explicit null would erase a field: only those that may be empty accept it.
    if (v === null && !opts.nullable) return this.fail(`${path}.${key}`, 'cannot be null')
    if (v === undefined || v === null)
      return opts.required ? this.fail(`${path}.${key}`, 'is required') : undefined
    if (typeof v !== 'number' || !Number.isInteger(v))
      return this.fail(`${path}.${key}`, 'must be a whole number')
    if (opts.min !== undefined && v < opts.min)
      return this.fail(`${path}.${key}`, `must be at least ${opts.min}`)
    if (opts.max !== undefined && v > opts.max)
      return this.fail(`${path}.${key}`, `must be at most ${opts.max}`)
    return v
  }

  oneOf<T extends string>(
    o: Doc,
    key: string,
    path: string,
    values: readonly T[],
    opts: { required?: boolean; nullable?: boolean } = {},
  ): T | undefined {
    const v = o[key]
    // An explicit null would erase a field: only those that may be empty accept it.
    if (v === null && !opts.nullable) return this.fail(`${path}.${key}`, 'cannot be null')
    if (v === undefined || v === null)
      return opts.required ? this.fail(`${path}.${key}`, 'is required') : undefined
    return values.includes(v as T)
      ? (v as T)
      : this.fail(`${path}.${key}`, `must be one of ${values.join(', ')}`)
  }

  array(
    o: Doc,
    key: string,
    path: string,
    opts: { required?: boolean; max?: number; nullable?: boolean } = {},
  ): unknown[] | undefined {
    const v = o[key]
    // An explicit null would erase a field: only those that may be empty accept it.
    if (v === null && !opts.nullable) return this.fail(`${path}.${key}`, 'cannot be null')
    if (v === undefined || v === null)
      return opts.required ? this.fail(`${path}.${key}`, 'is required') : undefined
    if (!Array.isArray(v)) return this.fail(`${path}.${key}`, 'must be a list')
    if (v.length > (opts.max ?? 10_000))
      return this.fail(`${path}.${key}`, `must have at most ${opts.max ?? 10_000} entries`)
    return v as unknown[]
  }

  /** `{ "href": "..." }` */
  hrefRef(x: unknown, path: string): string | undefined {
    if (!isObj(x) || typeof x.href !== 'string') return this.fail(path, 'must be {"href": "..."}')
    return x.href
  }

  /** A refusal for the problems found so far (after a check that found one). */
  refused(): Checked<never> {
    return { ok: false, issues: this.issues }
  }

  /** The checked value, or every problem found on the way to it. */
  result<T>(value: T | undefined): Checked<T> {
    if (this.issues.length > 0) return { ok: false, issues: this.issues }
    // Every check that yields nothing records why: reaching here is a bug in the caller.
    if (value === undefined) throw new Error('a document was refused without an issue')
    return { ok: true, value }
  }
}
