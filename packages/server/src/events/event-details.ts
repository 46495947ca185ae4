/**
 * What an agent's event may carry: its details are stored as sent up to a size, and past it as
 * a marked excerpt, so a batch of events costs the store a bounded amount. Pure.
 */

/** The most JSON text an event's details are stored with. */
export const EVENT_DETAILS_MAX = 2048
const EXCERPT = 1024

/** The details as stored: as sent, or `{ truncated, bytes, excerpt }` past the limit. */
export function cappedDetails(details: Record<string, unknown>): Record<string, unknown> {
  const text = JSON.stringify(details)
  if (text.length <= EVENT_DETAILS_MAX) return details
  return { truncated: true, bytes: Buffer.byteLength(text), excerpt: text.slice(0, EXCERPT) }
}
