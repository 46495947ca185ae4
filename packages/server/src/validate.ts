import { invalid } from './errors.js'

export type Doc = Record<string, unknown>
export const isObj = (x: unknown): x is Doc =>
  typeof x === 'object' && x !== null && !Array.isArray(x)

/** Collects every problem with a request body, then throws them all at once as a 406. */
export class Checker {
  readonly issues: { token: string; message: string }[] = []

  fail(path: string, message: string, token = 'input_validation_error'): undefined {
    this.issues.push({ token, message: `${path}: ${message}` })
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
    if (v === undefined)
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
    if (v === undefined)
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

  done(): void {
    if (this.issues.length > 0) throw invalid(this.issues)
  }
}

export interface WorkloadInterface {
  readonly name: string
  readonly address: string
  /** The prefix length, when the address was given as a CIDR (`10.0.0.5/24`). */
  readonly cidr_block?: number
}

/**
 * The `interfaces` of a workload: a name and an IPv4 or IPv6 address each. An address given as
 * a CIDR (`10.0.0.5/24`, as inventories list them) is kept split: the address and `cidr_block`.
 */
export function interfacesOf(c: Checker, body: Doc): WorkloadInterface[] | undefined {
  const list = c.array(body, 'interfaces', '$', { max: 256 })
  if (!list) return undefined
  const out: WorkloadInterface[] = []
  list.forEach((x, i) => {
    const o = c.object(x, `$.interfaces[${i}]`)
    if (!o) return
    const name = c.string(o, 'name', `$.interfaces[${i}]`, { required: true, max: 64 })
    const given = c.string(o, 'address', `$.interfaces[${i}]`, { required: true, max: 64 })
    if (name === undefined || given === undefined) return
    const [address = '', prefix] = given.split('/')
    if (!/^[0-9a-fA-F:.]+$/.test(address) || given.split('/').length > 2)
      return void c.fail(
        `$.interfaces[${i}].address`,
        'must be an IPv4 or IPv6 address, or one with its prefix length (10.0.0.5/24)',
      )
    if (prefix === undefined) return void out.push({ name, address })
    const bits = Number(prefix)
    const max = address.includes(':') ? 128 : 32
    if (!/^\d+$/.test(prefix) || bits > max)
      return void c.fail(
        `$.interfaces[${i}].address`,
        `the prefix length after "/" must be a whole number from 0 to ${max}`,
      )
    out.push({ name, address, cidr_block: bits })
  })
  return out
}
