/**
 * The addresses a query's actors can name, for the store to read only the summaries that could
 * match: over millions of stored flows, summing every one and matching in memory is the cost of
 * a query. Only a necessary condition: every flow it keeps is still matched in full
 * (`flowMatches`). Pure.
 */
import { draftHref } from '../hrefs.js'
import type { ActorContext, FlowWorkload } from './flow-match.js'
import type { ActorRef, Side, TrafficQuery } from './query-parse.js'

/** Addresses a flow's end must be one of; null: any address. */
export type Addresses = ReadonlySet<string> | null

/**
 * `and`: the source must be in `src` and the destination in `dst` (null: either may be
 * anything). `or`: the source in `src` or the destination in `dst`.
 */
export interface AddressFilter {
  readonly op: 'and' | 'or'
  readonly src: Addresses
  readonly dst: Addresses
}

function addressesOf(ctx: ActorContext, keep: (w: FlowWorkload) => boolean): Set<string> {
  const out = new Set<string>()
  for (const [ip, w] of ctx.workloadByIp) if (keep(w)) out.add(ip)
  return out
}

/** The addresses an actor can match; null when they are not a list (ranges, anything). */
function actorAddresses(a: ActorRef, ctx: ActorContext): Addresses {
  switch (a.kind) {
    case 'label':
      return addressesOf(ctx, (w) => w.labels.some((l) => l.href === a.href))
    case 'label_group': {
      const members = ctx.labelGroups.get(draftHref(a.href))
      return members
        ? addressesOf(ctx, (w) => w.labels.some((l) => members.has(l.href)))
        : new Set()
    }
    case 'workload':
      return addressesOf(ctx, (w) => w.href === a.href)
    case 'ams':
      return addressesOf(ctx, (w) => w.managed)
    case 'fqdn':
      return new Set(a.addresses)
    case 'ip_list':
    case 'ip_address':
    case 'transmission':
      return null
  }
}

/**
 * A side's addresses: a group matches only addresses every one of its actors matches (those
 * listed bound it: their intersection); the side is the union of its groups.
 */
function sideAddresses(side: Side, ctx: ActorContext): Addresses {
  if (side.include.length === 0) return null
  const out = new Set<string>()
  for (const group of side.include) {
    const both = group
      .map((a) => actorAddresses(a, ctx))
      .reduce<Addresses>(
        (x, y) => (x && y ? new Set([...x].filter((ip) => y.has(ip))) : (x ?? y)),
        null,
      )
    if (!both) return null
    for (const ip of both) out.add(ip)
  }
  return out
}

/** The address filter of a query; undefined when its actors bound no end. */
export function addressFilter(q: TrafficQuery, ctx: ActorContext): AddressFilter | undefined {
  const src = sideAddresses(q.sources, ctx)
  const dst = sideAddresses(q.destinations, ctx)
  const either = q.sources.include.length > 0 || q.destinations.include.length > 0
  if (q.op === 'or' && either) {
    // A side without includes cannot make the flow match; one with includes it cannot bound
    // leaves every flow possible.
    if ((q.sources.include.length > 0 && !src) || (q.destinations.include.length > 0 && !dst))
      return undefined
    return { op: 'or', src: src ?? new Set(), dst: dst ?? new Set() }
  }
  return src || dst ? { op: 'and', src, dst } : undefined
}
