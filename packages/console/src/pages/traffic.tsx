import { useState } from 'preact/hooks'
import type { Label } from '../api.js'
import { call, labelText, O, otherMessages } from '../api.js'
import { useLive } from '../hooks.js'
import { Errors, Page, TableHead, TextField, TimeSelect, when } from '../ui.js'
import { parsePorts } from '../policy-text.js'

interface Endpoint {
  ip: string
  workload?: { href: string; name: string; labels: Label[] }
}
interface Flow {
  src: Endpoint
  dst: Endpoint
  service: { port?: number; proto: number }
  num_connections: number
  policy_decision: string
  flow_direction: string
  timestamp_range: { first_detected: string; last_detected: string }
  dropped_downstream: boolean
}

const DECISIONS = ['allowed', 'potentially_blocked', 'blocked'] as const
/** An actor of the query from what was typed: a label's `key: value`, or an address. */
function actorOf(text: string, labels: readonly Label[]) {
  const t = text.trim()
  if (!t) return []
  const l = labels.find((x) => labelText(x) === t)
  return [[l ? { label: { href: l.href } } : { ip_address: t }]]
}

export function TrafficPage() {
  const labels = useLive(() => call<Label[]>('GET', `${O}/labels?max_results=10000`), null)
  const [src, setSrc] = useState('')
  const [dst, setDst] = useState('')
  const [ports, setPorts] = useState('')
  const [decisions, setDecisions] = useState<string[]>([...DECISIONS])
  const [since, setSince] = useState('24')
  const [flows, setFlows] = useState<Flow[]>()
  const [error, setError] = useState<unknown>()
  const [busy, setBusy] = useState(false)
  const run = async (e: Event) => {
    e.preventDefault()
    setBusy(true)
    setError(undefined)
    try {
      const all = labels.data ?? []
      const q = await call<{ href: string }>('POST', `${O}/traffic_flows/async_queries`, {
        query_name: 'console',
        start_date: new Date(Date.now() - Number(since) * 3_600_000).toISOString(),
        end_date: new Date(Date.now() + 60_000).toISOString(),
        sources: { include: actorOf(src, all), exclude: [] },
        destinations: { include: actorOf(dst, all), exclude: [] },
        services: { include: parsePorts(ports), exclude: [] },
        policy_decisions: decisions,
        max_results: 10_000,
      })
      for (let i = 0; i < 300; i++) {
        const s = await call<{ status: string; result: string | null; error_message?: string }>(
          'GET',
          `/api/v2${q.href}`,
        )
        if (s.status === 'completed' && s.result) {
          setFlows(await call<Flow[]>('GET', `/api/v2${s.result}`))
          return
        }
        if (s.status === 'failed') throw new Error(s.error_message ?? 'the query failed')
        await new Promise((r) => setTimeout(r, 200))
      }
      throw new Error('the query did not finish within a minute')
    } catch (err) {
      setError(err)
    } finally {
      setBusy(false)
    }
  }
  return (
    <Page title="Traffic">
      <datalist id="label-names">
        {(labels.data ?? []).map((l) => (
          <option key={l.href} value={labelText(l)} />
        ))}
      </datalist>
      <form class="filters" onSubmit={(e) => void run(e)} aria-label="Traffic query">
        <TextField
          id="tq-src"
          label="Source"
          list="label-names"
          placeholder="label (role: web) or address"
          value={src}
          onValue={setSrc}
        />
        <TextField
          id="tq-dst"
          label="Destination"
          list="label-names"
          placeholder="label or address"
          value={dst}
          onValue={setDst}
        />
        <TextField
          id="tq-ports"
          label="Services"
          placeholder="tcp/5432"
          value={ports}
          onValue={setPorts}
        />
        <TimeSelect id="tq-since" value={since} onValue={setSince} />
        <fieldset class="inline">
          <legend>Policy decisions</legend>
          {DECISIONS.map((d) => (
            <label key={d} class="radio">
              <input
                type="checkbox"
                checked={decisions.includes(d)}
                onChange={(e) =>
                  setDecisions(
                    (e.target as HTMLInputElement).checked
                      ? [...decisions, d]
                      : decisions.filter((x) => x !== d),
                  )
                }
              />
              {d.replace('_', ' ')}
            </label>
          ))}
        </fieldset>
        <button type="submit" disabled={busy}>
          {busy ? 'Querying…' : 'Query'}
        </button>
      </form>
      <Errors messages={otherMessages(error, [])} />
      {flows && <TrafficMap flows={flows} />}
      {flows && (
        <div class="scroll">
          <table aria-label="Flows">
            <TableHead
              columns={[
                'Source',
                'Destination',
                'Service',
                'Decision',
                'Reported by',
                'Connections',
                'Last seen',
              ]}
            />
            <tbody>
              {flows.map((f, i) => (
                <tr key={i}>
                  <td>{f.src.workload?.name ?? f.src.ip}</td>
                  <td>{f.dst.workload?.name ?? f.dst.ip}</td>
                  <td>
                    {f.service.proto === 6
                      ? 'tcp'
                      : f.service.proto === 17
                        ? 'udp'
                        : `proto ${f.service.proto}`}
                    {f.service.port !== undefined && `/${f.service.port}`}
                  </td>
                  <td>
                    <span class={`decision ${f.policy_decision}`}>
                      {f.policy_decision.replace('_', ' ')}
                    </span>
                    {f.dropped_downstream && (
                      <span class="tag warn">dropped by a later firewall</span>
                    )}
                  </td>
                  <td>{f.flow_direction === 'inbound' ? 'destination' : 'source'}</td>
                  <td>{f.num_connections}</td>
                  <td>{when(f.timestamp_range.last_detected)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {flows?.length === 0 && <p class="empty">No flows match.</p>}
    </Page>
  )
}

const groupOf = (e: Endpoint) => {
  const ls = e.workload?.labels ?? []
  const v = (k: string) => ls.find((l) => l.key === k)?.value
  return e.workload ? `${v('app') ?? v('role') ?? 'no app'} | ${v('env') ?? 'no env'}` : 'outside'
}
const WORST = { blocked: 3, potentially_blocked: 2, allowed: 1 } as Record<string, number>

/** Workloads grouped by app and env; an edge per pair, coloured by its worst decision. */
function TrafficMap({ flows }: { flows: Flow[] }) {
  const nodes = new Map<string, { name: string; group: string }>()
  for (const f of flows)
    for (const e of [f.src, f.dst])
      nodes.set(e.workload?.href ?? e.ip, { name: e.workload?.name ?? e.ip, group: groupOf(e) })
  const groups = [...new Set([...nodes.values()].map((n) => n.group))].sort()
  const W = 960
  const cols = Math.max(1, Math.min(groups.length, 3))
  const gw = W / cols
  const gh = 220
  const pos = new Map<string, { x: number; y: number }>()
  groups.forEach((g, gi) => {
    const members = [...nodes.entries()].filter(([, n]) => n.group === g)
    const cx = (gi % cols) * gw + gw / 2
    const cy = Math.floor(gi / cols) * gh + gh / 2 + 10
    members.forEach(([k], i) => {
      const a = (2 * Math.PI * i) / members.length
      const r = members.length === 1 ? 0 : 60
      pos.set(k, { x: cx + r * Math.cos(a), y: cy + r * Math.sin(a) })
    })
  })
  const edges = new Map<string, { from: string; to: string; decision: string; n: number }>()
  for (const f of flows) {
    const from = f.src.workload?.href ?? f.src.ip
    const to = f.dst.workload?.href ?? f.dst.ip
    const k = `${from}>${to}`
    const e = edges.get(k)
    if (!e) edges.set(k, { from, to, decision: f.policy_decision, n: f.num_connections })
    else {
      e.n += f.num_connections
      if ((WORST[f.policy_decision] ?? 0) > (WORST[e.decision] ?? 0)) e.decision = f.policy_decision
    }
  }
  const height = Math.ceil(groups.length / cols) * gh + 20
  return (
    <figure class="map">
      <svg
        viewBox={`0 0 ${W} ${height}`}
        role="img"
        aria-label={`Traffic map: ${nodes.size} endpoints in ${groups.length} groups, ${edges.size} connections`}
      >
        <defs>
          <marker
            id="arrow"
            viewBox="0 0 10 10"
            refX="16"
            refY="5"
            markerWidth="6"
            markerHeight="6"
            orient="auto-start-reverse"
          >
            <path d="M 0 0 L 10 5 L 0 10 z" fill="#666" />
          </marker>
        </defs>
        {groups.map((g, gi) => (
          <g key={g}>
            <rect
              x={(gi % cols) * gw + 8}
              y={Math.floor(gi / cols) * gh + 8}
              width={gw - 16}
              height={gh - 16}
              rx="10"
              class="group"
            />
            <text x={(gi % cols) * gw + 20} y={Math.floor(gi / cols) * gh + 28} class="group-name">
              {g}
            </text>
          </g>
        ))}
        {[...edges.values()].map((e) => {
          const a = pos.get(e.from)
          const b = pos.get(e.to)
          if (!a || !b) return null
          return (
            <line
              key={`${e.from}>${e.to}`}
              x1={a.x}
              y1={a.y}
              x2={b.x}
              y2={b.y}
              class={`edge ${e.decision}`}
              marker-end="url(#arrow)"
            >
              <title>{`${nodes.get(e.from)?.name} → ${nodes.get(e.to)?.name}: ${e.decision}, ${e.n} connections`}</title>
            </line>
          )
        })}
        {[...pos.entries()].map(([k, p]) => (
          <g key={k}>
            <circle cx={p.x} cy={p.y} r="9" class="node" />
            <text x={p.x} y={p.y + 24} class="node-name">
              {nodes.get(k)?.name}
            </text>
          </g>
        ))}
      </svg>
      <figcaption>
        <span class="decision allowed">allowed</span>{' '}
        <span class="decision potentially_blocked">potentially blocked</span>{' '}
        <span class="decision blocked">blocked</span>
      </figcaption>
    </figure>
  )
}
