import type { Checked, Issue } from '@palisade/model'
import { Checker as DocChecker } from '@palisade/model'
import { invalid } from './errors.js'

export type { Doc } from '@palisade/model'
export { isObj } from '@palisade/model'
export { interfacesOf } from '@palisade/protocol'

/** The 406 that refuses a body for these problems: `[{token, message: "path: what"}]`. */
export const refusal = (issues: readonly Issue[]) =>
  invalid(
    issues.map((i) => ({
      token: i.token ?? 'input_validation_error',
      message: `${i.path}: ${i.message}`,
    })),
  )

/** Collects every problem with a request body, then throws them all at once as a 406. */
export class Checker extends DocChecker {
  done(): void {
    if (this.issues.length > 0) throw refusal(this.issues)
  }
}

/** A checked body's value; throws the 406 its problems make. */
export function accepted<T>(r: Checked<T>): T {
  if (!r.ok) throw refusal(r.issues)
  return r.value
}

export interface WorkloadInterface {
  readonly name: string
  readonly address: string
  /** What the API may say of an interface it describes (agents report name and address). */
  readonly cidr_block?: number | null
  readonly default_gateway_address?: string | null
  readonly link_state?: 'up' | 'down' | 'unknown' | null
  readonly friendly_name?: string | null
}
