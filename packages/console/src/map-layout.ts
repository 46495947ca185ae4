import type { Label } from './api.js'
import { protoName } from './names.js'

/**
 * The traffic map's model: flows folded into groups (app and env), endpoints and edges, and
 * where each goes on a canvas of a given width. Pure, so the layout is the same for the same
 * flows, and cheap enough for thousands of flows.
 */

export interface Endpoint {
  ip: string
  workload?: { href: string; name: string; labels: Label[] }
}
export interface Flow {
  src: Endpoint
  dst: Endpoint
  service: { port?: number; proto: number }
  num_connections: number
  policy_decision: string
  flow_direction: string
  timestamp_range: { first_detected: string; last_detected: string }
  dropped_downstream: boolean
  /** What each end reported (null: that end did not report the connection). */
  reports: {
    source: { policy_decision: string } | null
    destination: { policy_decision: string } | null
  }
}

export type Level = 'workloads' | 'groups'

export interface MapGroup {
  readonly key: string
  readonly name: string
  /** The labels that make the group (app, env), for writing a rule about it. */
  readonly labels: readonly Label[]
  readonly members: readonly string[]
  x: number
  y: number
  w: number
  h: number
}
export interface MapNode {
  readonly key: string
  readonly name: string
  readonly group: string
  readonly workloadHref?: string
  x: number
  y: number
  /** Where its name goes: outside the ring of its group, so edges inside never cross it. */
  lx: number
  ly: number
  anchor: 'start' | 'middle' | 'end'
}
export interface MapEdge {
  readonly key: string
  readonly from: string
  readonly to: string
  readonly ports: string[]
  decision: string
  connections: number
  flows: number
}
export interface MapModel {
  readonly groups: MapGroup[]
  readonly nodes: Map<string, MapNode>
  readonly edges: MapEdge[]
  readonly width: number
  readonly height: number
}

export const OUTSIDE = 'outside'
const WORST: Record<string, number> = { blocked: 3, potentially_blocked: 2, allowed: 1 }

export const endpointKey = (e: Endpoint) => e.workload?.href ?? e.ip
export const serviceText = (s: Flow['service']) =>
  `${protoName(s.proto)}${s.port !== undefined ? `/${s.port}` : ''}`

/** The group of an endpoint: its app and env labels; addresses outside any workload together. */
export function groupOf(e: Endpoint): { key: string; name: string; labels: Label[] } {
  if (!e.workload) return { key: OUTSIDE, name: 'Outside: addresses of no workload', labels: [] }
  const ls = e.workload.labels
  const app = ls.find((l) => l.key === 'app')
  const env = ls.find((l) => l.key === 'env')
  return {
    key: `${app?.href ?? '-'}|${env?.href ?? '-'}`,
    name: `${app?.value ?? 'no app'} | ${env?.value ?? 'no env'}`,
    labels: [app, env].filter((l): l is Label => l !== undefined),
  }
}

/** Whether a flow touches the selection (a node, a group or an edge of the map). */
export type Selection =
  | { readonly kind: 'node'; readonly key: string }
  | { readonly kind: 'group'; readonly key: string }
  | { readonly kind: 'edge'; readonly from: string; readonly to: string }

export function flowSelected(f: Flow, s: Selection, level: Level): boolean {
  const at = (e: Endpoint) => (level === 'groups' ? groupOf(e).key : endpointKey(e))
  switch (s.kind) {
    case 'node':
      return endpointKey(f.src) === s.key || endpointKey(f.dst) === s.key
    case 'group':
      return groupOf(f.src).key === s.key || groupOf(f.dst).key === s.key
    case 'edge':
      return at(f.src) === s.from && at(f.dst) === s.to
  }
}

const NODE_W = 104
const NODE_H = 56
const HEADER = 30
const GROUP_CELL_W = 230
const GROUP_CELL_H = 130

/** Folds the flows into the map at `level` and lays it out `width` pixels wide. */
export function buildMap(flows: readonly Flow[], level: Level, width: number): MapModel {
  const groups = new Map<string, MapGroup>()
  const nodes = new Map<string, MapNode>()
  const member = (e: Endpoint) => {
    const g = groupOf(e)
    let group = groups.get(g.key)
    if (!group) {
      group = { ...g, members: [], x: 0, y: 0, w: 0, h: 0 }
      groups.set(g.key, group)
    }
    const key = level === 'groups' ? g.key : endpointKey(e)
    if (!nodes.has(key)) {
      nodes.set(key, {
        key,
        name: level === 'groups' ? g.name : (e.workload?.name ?? e.ip),
        group: g.key,
        ...(e.workload && level === 'workloads' && { workloadHref: e.workload.href }),
        x: 0,
        y: 0,
        lx: 0,
        ly: 0,
        anchor: 'middle',
      })
      ;(group.members as string[]).push(key)
    }
    return key
  }
  const edges = new Map<string, MapEdge>()
  for (const f of flows) {
    const from = member(f.src)
    const to = member(f.dst)
    const k = `${from}>${to}`
    let e = edges.get(k)
    if (!e) {
      e = { key: k, from, to, ports: [], decision: f.policy_decision, connections: 0, flows: 0 }
      edges.set(k, e)
    }
    e.connections += f.num_connections
    e.flows += 1
    const port = serviceText(f.service)
    if (!e.ports.includes(port)) e.ports.push(port)
    if ((WORST[f.policy_decision] ?? 0) > (WORST[e.decision] ?? 0)) e.decision = f.policy_decision
  }
  const ordered = [...groups.values()].sort((a, b) =>
    a.key === OUTSIDE ? 1 : b.key === OUTSIDE ? -1 : a.name.localeCompare(b.name),
  )
  const height =
    level === 'groups'
      ? layoutGroupNodes(ordered, nodes, width)
      : layoutBoxes(ordered, nodes, width)
  for (const e of edges.values()) e.ports.sort()
  return { groups: ordered, nodes, edges: [...edges.values()], width, height }
}

/** Up to this many members, a group's endpoints stand on a ring; more, in rows. */
const RING_MAX = 12

/** A name under its node. */
function labelBelow(n: MapNode, r: number) {
  n.lx = n.x
  n.ly = n.y + r + 14
  n.anchor = 'middle'
}

/**
 * Workloads: each group a box, boxes in columns as wide as fits. Up to `RING_MAX` members stand
 * on a ring with their names outside it, so edges between them (chords) cross no name; larger
 * groups are laid in rows.
 */
function layoutBoxes(groups: MapGroup[], nodes: Map<string, MapNode>, width: number): number {
  const cols = Math.max(1, Math.floor(width / 340))
  const colW = width / cols
  const perRow = Math.max(1, Math.floor((colW - 24) / NODE_W))
  let y = 8
  for (let i = 0; i < groups.length; i += cols) {
    const row = groups.slice(i, i + cols)
    let rowH = 0
    row.forEach((g, c) => {
      g.x = c * colW + 8
      g.y = y
      g.w = colW - 16
      const members = g.members.flatMap((k) => nodes.get(k) ?? [])
      if (members.length <= RING_MAX) {
        const r = members.length <= 1 ? 0 : Math.min((g.w - 150) / 2, 30 + members.length * 9)
        const cx = g.x + g.w / 2
        const cy = g.y + HEADER + r + 22
        members.forEach((n, m) => {
          const a = -Math.PI / 2 + (2 * Math.PI * m) / members.length
          const [cos, sin] = [Math.cos(a), Math.sin(a)]
          n.x = cx + r * cos
          n.y = cy + r * sin
          if (members.length <= 1) return labelBelow(n, 9)
          n.lx = cx + (r + 14) * cos
          n.ly = cy + (r + 14) * sin + (sin > 0.3 ? 10 : sin < -0.3 ? -2 : 4)
          n.anchor = cos > 0.3 ? 'start' : cos < -0.3 ? 'end' : 'middle'
        })
        g.h = HEADER + 2 * r + 56
      } else {
        const rows = Math.ceil(members.length / perRow)
        const inRow = Math.min(perRow, members.length)
        const left = g.x + (g.w - inRow * NODE_W) / 2 + NODE_W / 2
        members.forEach((n, m) => {
          n.x = left + (m % perRow) * NODE_W
          n.y = g.y + HEADER + Math.floor(m / perRow) * NODE_H + 14
          labelBelow(n, 9)
        })
        g.h = HEADER + rows * NODE_H + 8
      }
      rowH = Math.max(rowH, g.h)
    })
    y += rowH + 16
  }
  return y
}

/** Groups: each group one node, in a grid. */
function layoutGroupNodes(groups: MapGroup[], nodes: Map<string, MapNode>, width: number) {
  const cols = Math.max(1, Math.floor(width / GROUP_CELL_W))
  const cellW = width / cols
  groups.forEach((g, i) => {
    g.x = (i % cols) * cellW
    g.y = Math.floor(i / cols) * GROUP_CELL_H + 8
    g.w = cellW
    g.h = GROUP_CELL_H
    const n = nodes.get(g.key)
    if (n) {
      n.x = g.x + cellW / 2
      n.y = g.y + 40
      labelBelow(n, 14)
    }
  })
  return Math.ceil(groups.length / cols) * GROUP_CELL_H + 16
}

/** A short text of an edge's services: the first few, then how many more. */
export const portsLabel = (ports: readonly string[], max = 2) =>
  ports.length <= max
    ? ports.join(', ')
    : `${ports.slice(0, max).join(', ')} +${ports.length - max}`
