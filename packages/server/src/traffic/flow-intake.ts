/**
 * What the server keeps of an agent's flow summaries: an agent speaks for its own host only, so
 * a summary is kept when one of its ends is an address of the reporting workload, and its times
 * are clamped to the server's clock (a summary dated in the future would outlive retention).
 */
import type { FlowSummaryUpload } from '@palisade/model'

export interface FlowIntake {
  readonly kept: FlowSummaryUpload[]
  /** The summaries that name none of the reporter's addresses. */
  readonly refused: FlowSummaryUpload[]
}

/**
 * Splits a batch by whether the reporter may speak for it. `addresses` are the workload's, as
 * stored (canonical, as the flows' ends are once checked); `now` is the server's time.
 */
export function flowIntake(
  flows: readonly FlowSummaryUpload[],
  addresses: ReadonlySet<string>,
  now: Date,
): FlowIntake {
  const kept: FlowSummaryUpload[] = []
  const refused: FlowSummaryUpload[] = []
  const clamp = (t: string) => new Date(Math.min(Date.parse(t), now.getTime())).toISOString()
  for (const f of flows) {
    if (!addresses.has(f.src_ip) && !addresses.has(f.dst_ip)) refused.push(f)
    else kept.push({ ...f, first_seen: clamp(f.first_seen), last_seen: clamp(f.last_seen) })
  }
  return { kept, refused }
}
