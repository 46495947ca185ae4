/**
 * A workload's stored row as a recompute may use it. The row came from an agent or a client
 * and passed the checks on the way in, but the store is not trusted further: a row that does
 * not read, or an address that does not parse, would otherwise stop every host's policy.
 */
import type { Workload } from '@palisade/model'
import { canonicalAddress } from '@palisade/model'

/** The model, or why the row cannot be used. */
export type Screened =
  | { readonly model: Workload; readonly reason?: undefined }
  | { readonly model?: undefined; readonly reason: string }

/** Reads a workload's model with `read` and checks what the policy takes from it. */
export function screenWorkload(read: () => Workload): Screened {
  let model: Workload
  try {
    model = read()
  } catch (e) {
    return { reason: `its stored row does not read: ${(e as Error).message}` }
  }
  // What the types promise is what the row is checked for: JSON may hold anything.
  const labels: unknown = model.labels
  const interfaces: unknown = model.interfaces
  if (!Array.isArray(labels) || !labels.every((l) => typeof l === 'string'))
    return { reason: 'its labels are not a list of hrefs' }
  if (!Array.isArray(interfaces)) return { reason: 'its interfaces are not a list' }
  for (const i of model.interfaces) {
    let family: 4 | 6
    try {
      family = canonicalAddress(String(i.address)).family
    } catch {
      return {
        reason: `interface ${JSON.stringify(i.name)}: ${JSON.stringify(i.address)} is not an IPv4 or IPv6 address`,
      }
    }
    const bits = family === 4 ? 32 : 128
    if (
      i.cidrBlock !== undefined &&
      !(Number.isInteger(i.cidrBlock) && i.cidrBlock >= 0 && i.cidrBlock <= bits)
    )
      return {
        reason: `interface ${JSON.stringify(i.name)}: prefix length ${JSON.stringify(i.cidrBlock)} is not 0 to ${bits}`,
      }
  }
  return { model }
}
