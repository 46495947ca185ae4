import { Component } from 'preact'
import type { MapEdge, MapModel, MapNode, Selection } from '../map-layout.js'
import { portsLabel } from '../map-layout.js'
import { decisionName } from '../names.js'

/** Above this many, edges and nodes are not each a tab stop: the flow table is the way there. */
const FOCUSABLE_MAX = 150
/** Above this many edges, each is a bare line (no arrow, no tooltip): selecting one tells all. */
const DENSE_MIN = 600
/** Above this many edges, ports are written on the selected ones only, so the map stays legible. */
const PORT_LABELS_MAX = 250

const short = (s: string, n = 15) => (s.length > n ? `${s.slice(0, n - 1)}…` : s)
/**
 * Where an edge's ports are written: nearer its source than its middle, so the labels of two
 * edges that cross (or run both ways) do not land on the same spot.
 */
const labelAt = (a: MapNode, b: MapNode) => ({
  x: a.x + (b.x - a.x) * 0.38,
  y: a.y + (b.y - a.y) * 0.38,
})

/** An edge as a line ending short of its target node, so the arrow stays visible. */
function ends(a: MapNode, b: MapNode, r: number) {
  const dx = b.x - a.x
  const dy = b.y - a.y
  const len = Math.hypot(dx, dy) || 1
  return { x1: a.x, y1: a.y, x2: b.x - (dx / len) * r, y2: b.y - (dy / len) * r }
}

const edgeTitle = (e: MapEdge, m: MapModel) =>
  `${m.nodes.get(e.from)?.name} → ${m.nodes.get(e.to)?.name}: ${e.ports.join(', ')}; ${decisionName(e.decision)}; ${e.connections} connections`

/**
 * Everything that does not change with the selection, drawn once per model: a selection
 * re-renders only the overlay, which keeps clicks fast on maps of thousands of flows.
 */
class MapLayer extends Component<{ m: MapModel; groupsLevel: boolean }> {
  override shouldComponentUpdate(next: { m: MapModel; groupsLevel: boolean }) {
    return next.m !== this.props.m || next.groupsLevel !== this.props.groupsLevel
  }
  override render() {
    return drawMap(this.props.m, this.props.groupsLevel)
  }
}

function drawMap(m: MapModel, groupsLevel: boolean) {
  const nodeR = groupsLevel ? 14 : 9
  const focusEdges = m.edges.length <= FOCUSABLE_MAX
  const focusNodes = m.nodes.size <= FOCUSABLE_MAX
  const labels = m.edges.length <= PORT_LABELS_MAX
  const dense = m.edges.length > DENSE_MIN
  return (
    <g>
      {!groupsLevel &&
        m.groups.map((g) => (
          <g
            key={g.key}
            data-group={g.key}
            class="group"
            role="button"
            tabindex={0}
            aria-label={`Group ${g.name}: ${g.members.length} endpoints`}
          >
            <rect x={g.x} y={g.y} width={g.w} height={g.h} rx="10" />
            <text x={g.x + 12} y={g.y + 20} class="group-name">
              {g.name} ({g.members.length})
            </text>
          </g>
        ))}
      {m.edges.map((e) => {
        const a = m.nodes.get(e.from)
        const b = m.nodes.get(e.to)
        if (!a || !b || a === b) return null
        const p = ends(a, b, nodeR + 4)
        // Thousands of edges: one element each, so the map stays quick to draw and to click.
        if (dense)
          return <line key={e.key} {...p} data-edge={e.key} class={`edge dense ${e.decision}`} />
        return (
          <g
            key={e.key}
            data-edge={e.key}
            class={`edge ${e.decision}`}
            role={focusEdges ? 'button' : undefined}
            tabindex={focusEdges ? 0 : undefined}
            aria-label={focusEdges ? edgeTitle(e, m) : undefined}
          >
            <line {...p} class="hit" />
            <line {...p} class="stroke" marker-end={`url(#arrow-${e.decision})`} />
            <title>{edgeTitle(e, m)}</title>
          </g>
        )
      })}
      {labels &&
        m.edges.map((e) => {
          const a = m.nodes.get(e.from)
          const b = m.nodes.get(e.to)
          if (!a || !b || a === b) return null
          const c = labelAt(a, b)
          return (
            <text key={e.key} x={c.x} y={c.y - 4} class="port" data-edge={e.key} aria-hidden="true">
              {portsLabel(e.ports)}
            </text>
          )
        })}
      {[...m.nodes.values()].map((n) => (
        <g
          key={n.key}
          data-node={groupsLevel ? undefined : n.key}
          data-group={groupsLevel ? n.group : undefined}
          class="node"
          role={focusNodes || groupsLevel ? 'button' : undefined}
          tabindex={focusNodes || groupsLevel ? 0 : undefined}
          aria-label={focusNodes || groupsLevel ? n.name : undefined}
        >
          <circle cx={n.x} cy={n.y} r={nodeR} />
          <text x={n.lx} y={n.ly} class="node-name" text-anchor={n.anchor}>
            {short(n.name, groupsLevel ? 26 : 15)}
          </text>
          <title>{n.name}</title>
        </g>
      ))}
    </g>
  )
}

/** What the selection picks out, drawn over the map. */
function Overlay({ m, s, groupsLevel }: { m: MapModel; s: Selection; groupsLevel: boolean }) {
  const nodeR = groupsLevel ? 14 : 9
  if (s.kind === 'node' || (s.kind === 'group' && groupsLevel)) {
    const n = m.nodes.get(s.key)
    return n ? <circle cx={n.x} cy={n.y} r={nodeR + 5} class="selected-ring" /> : null
  }
  if (s.kind === 'group') {
    const g = m.groups.find((x) => x.key === s.key)
    return g ? (
      <rect x={g.x} y={g.y} width={g.w} height={g.h} rx="10" class="selected-group" />
    ) : null
  }
  const e = m.edges.find((x) => x.from === s.from && x.to === s.to)
  const a = e && m.nodes.get(e.from)
  const b = e && m.nodes.get(e.to)
  if (!e || !a || !b) return null
  const c = labelAt(a, b)
  return (
    <g class="selected-edge">
      <line {...ends(a, b, nodeR + 4)} marker-end="url(#arrow-selected)" />
      <text x={c.x} y={c.y - 4} class="port">
        {portsLabel(e.ports, 4)}
      </text>
    </g>
  )
}

const DECISIONS = ['allowed', 'potentially_blocked', 'blocked', 'selected'] as const

export function TrafficMap(props: {
  m: MapModel
  groupsLevel: boolean
  selection: Selection | undefined
  onSelect: (s: Selection | undefined) => void
}) {
  const { m } = props
  const pick = (target: EventTarget | null) => {
    const el = (target as Element | null)?.closest('[data-edge], [data-node], [data-group]')
    if (!el) return props.onSelect(undefined)
    const edge = el.getAttribute('data-edge')
    const node = el.getAttribute('data-node')
    const group = el.getAttribute('data-group')
    if (edge) {
      const e = m.edges.find((x) => x.key === edge)
      if (e) props.onSelect({ kind: 'edge', from: e.from, to: e.to })
    } else if (node) props.onSelect({ kind: 'node', key: node })
    else if (group) props.onSelect({ kind: 'group', key: group })
  }
  return (
    <svg
      width={m.width}
      height={m.height}
      viewBox={`0 0 ${m.width} ${m.height}`}
      role="group"
      aria-label={`Traffic map: ${m.nodes.size} ${props.groupsLevel ? 'groups' : 'endpoints'} in ${m.groups.length} groups, ${m.edges.length} connections`}
      onClick={(e) => pick(e.target)}
      onKeyDown={(e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault()
          pick(e.target)
        } else if (e.key === 'Escape') props.onSelect(undefined)
      }}
    >
      <defs>
        {DECISIONS.map((d) => (
          <marker
            key={d}
            id={`arrow-${d}`}
            viewBox="0 0 10 10"
            refX="9"
            refY="5"
            markerUnits="userSpaceOnUse"
            markerWidth="10"
            markerHeight="10"
            orient="auto-start-reverse"
          >
            <path d="M 0 0 L 10 5 L 0 10 z" class={`arrowhead ${d}`} />
          </marker>
        ))}
      </defs>
      <MapLayer m={m} groupsLevel={props.groupsLevel} />
      {props.selection && <Overlay m={m} s={props.selection} groupsLevel={props.groupsLevel} />}
    </svg>
  )
}
