import { normaliseCidr } from '@palisade/model'
import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import type { PolicyNames } from '../actor-choices.js'
import { call, labelText, messagesFor, O, otherMessages } from '../api.js'
import { useLive } from '../hooks.js'
import type { Column } from '../list.js'
import { Pager, SortableHead, useListView } from '../list.js'
import type { Flow, Level, Selection } from '../map-layout.js'
import { buildMap, endpointKey, flowSelected, groupOf, serviceText } from '../map-layout.js'
import type { Choice } from '../picker.js'
import { MultiPicker } from '../picker.js'
import { decisionName } from '../names.js'
import { loadLabels, loadPolicy, loadWorkloads } from '../policy-data.js'
import type { Actor } from '../policy-text.js'
import { parsePortsChecked } from '../policy-text.js'
import { Dialog, Errors, Page, TextField, TimeSelect, when } from '../ui.js'
import type { RuleDraft, RuleSet } from './rule-sets.js'
import { RuleForm } from './rule-sets.js'
import { TrafficMap } from './traffic-map.js'

const DECISIONS = ['allowed', 'potentially_blocked', 'blocked'] as const
/** Above this many endpoints the map starts with groups; workloads are one click away. */
const GROUPS_FIRST = 80

/** Typed text that names no label, workload or IP list may still be an address or a CIDR. */
const addressChoice = (text: string): Choice | string => {
  try {
    return { value: `ip:${normaliseCidr(text)}`, text: normaliseCidr(text), kind: 'address' }
  } catch {
    return `Nothing is named "${text}", and it is not an address or CIDR: pick a label, workload or IP list from the list, or type an address such as 198.18.0.0/24.`
  }
}

const actorOfChoice = (c: Choice) =>
  c.kind === 'address'
    ? { ip_address: c.value.slice(3) }
    : c.kind === 'label'
      ? { label: { href: c.value } }
      : c.kind === 'IP list'
        ? { ip_list: { href: c.value } }
        : { workload: { href: c.value } }

interface Names extends PolicyNames {
  ruleSets: RuleSet[]
}

export function TrafficPage() {
  const names = useLive(async (): Promise<Names> => {
    const [labels, draft, workloads] = await Promise.all([
      loadLabels(),
      loadPolicy('draft'),
      loadWorkloads(),
    ])
    const named = (x: readonly Record<string, unknown>[]) =>
      x as unknown as { href: string; name: string }[]
    return {
      labels,
      workloads,
      labelGroups: named(draft.labelGroups),
      ipLists: named(draft.ipLists),
      services: named(draft.services),
      ruleSets: (draft.ruleSets as unknown as RuleSet[]).filter(
        (rs) => rs.update_type !== 'delete',
      ),
    }
  }, 15_000)
  const [src, setSrc] = useState<Choice[]>([])
  const [dst, setDst] = useState<Choice[]>([])
  const [srcText, setSrcText] = useState('')
  const [dstText, setDstText] = useState('')
  const [sideErrors, setSideErrors] = useState<{ src?: string; dst?: string }>({})
  const [ports, setPorts] = useState('')
  const [decisions, setDecisions] = useState<string[]>([...DECISIONS])
  const [since, setSince] = useState('24')
  const [flows, setFlows] = useState<Flow[]>()
  const [error, setError] = useState<unknown>()
  const [portErrors, setPortErrors] = useState<string[]>([])
  const [busy, setBusy] = useState(false)
  const choices: Choice[] = useMemo(() => {
    const n = names.data
    if (!n) return []
    return [
      ...n.labels.map((l) => ({ value: l.href, text: labelText(l), kind: 'label' })),
      ...n.workloads.map((w) => ({ value: w.href, text: w.name, kind: 'workload' })),
      ...n.ipLists.map((l) => ({ value: l.href, text: l.name, kind: 'IP list' })),
    ]
  }, [names.data])
  /** What is typed in a side and not yet picked is taken too, or refused before anything runs. */
  const typed = (text: string): Choice | string | undefined => {
    const t = text.trim()
    if (!t) return undefined
    return choices.find((c) => c.text.toLowerCase() === t.toLowerCase()) ?? addressChoice(t)
  }
  const run = async (e: Event) => {
    e.preventDefault()
    const parsed = parsePortsChecked(ports)
    const [s, d] = [typed(srcText), typed(dstText)]
    setPortErrors(parsed.problems)
    setSideErrors({
      ...(typeof s === 'string' && { src: s }),
      ...(typeof d === 'string' && { dst: d }),
    })
    setError(undefined)
    if (parsed.problems.length > 0 || typeof s === 'string' || typeof d === 'string') {
      // Old results under an error would read as the answer to what was just asked.
      setFlows(undefined)
      return
    }
    const sources = s ? [...src, s] : src
    const destinations = d ? [...dst, d] : dst
    if (s) {
      setSrc(sources)
      setSrcText('')
    }
    if (d) {
      setDst(destinations)
      setDstText('')
    }
    setBusy(true)
    try {
      const side = (cs: Choice[]) => ({ include: cs.map((c) => [actorOfChoice(c)]), exclude: [] })
      const q = await call<{ href: string }>('POST', `${O}/traffic_flows/async_queries`, {
        query_name: 'console',
        start_date: new Date(Date.now() - Number(since) * 3_600_000).toISOString(),
        end_date: new Date(Date.now() + 60_000).toISOString(),
        sources: side(sources),
        destinations: side(destinations),
        services: { include: parsed.ports, exclude: [] },
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
      throw new Error('The query did not finish within a minute: narrow it and run it again.')
    } catch (err) {
      // Old results under a new error would read as the answer to the new query.
      setFlows(undefined)
      setError(err)
    } finally {
      setBusy(false)
    }
  }
  const claimed = ['$.sources', '$.destinations', '$.services', '$.policy_decisions']
  return (
    <Page title="Traffic">
      <form class="filters query" onSubmit={(e) => void run(e)} aria-label="Traffic query">
        <MultiPicker
          id="tq-src"
          label="Source"
          placeholder="label, workload, IP list or address"
          choices={choices}
          value={src}
          onChange={setSrc}
          text={srcText}
          onText={(t) => {
            setSrcText(t)
            setSideErrors({ ...sideErrors, src: undefined })
          }}
          free={addressChoice}
          errors={[...(sideErrors.src ? [sideErrors.src] : []), ...messagesFor(error, '$.sources')]}
        />
        <MultiPicker
          id="tq-dst"
          label="Destination"
          placeholder="label, workload, IP list or address"
          choices={choices}
          value={dst}
          onChange={setDst}
          text={dstText}
          onText={(t) => {
            setDstText(t)
            setSideErrors({ ...sideErrors, dst: undefined })
          }}
          free={addressChoice}
          errors={[
            ...(sideErrors.dst ? [sideErrors.dst] : []),
            ...messagesFor(error, '$.destinations'),
          ]}
        />
        <div>
          <TextField
            id="tq-ports"
            label="Services"
            placeholder="tcp/5432"
            value={ports}
            onValue={setPorts}
            errors={[...portErrors, ...messagesFor(error, '$.services')]}
          />
        </div>
        <div>
          <TimeSelect id="tq-since" value={since} onValue={setSince} />
        </div>
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
              {decisionName(d)}
            </label>
          ))}
          <Errors messages={messagesFor(error, '$.policy_decisions')} />
        </fieldset>
        <button type="submit" disabled={busy}>
          {busy ? 'Querying…' : 'Query'}
        </button>
      </form>
      <p class="hint">
        Several sources (or destinations) match any of them. A side left empty matches everything.
      </p>
      <Errors messages={otherMessages(error, claimed)} />
      {flows && flows.length === 0 && <p class="empty">No flows match.</p>}
      {flows && flows.length > 0 && <Results flows={flows} names={names.data} />}
    </Page>
  )
}

/** The map and the flows of one query, with one selection between them. */
function Results({ flows, names }: { flows: Flow[]; names: Names | undefined }) {
  const box = useRef<HTMLDivElement>(null)
  const [width, setWidth] = useState(0)
  const endpoints = useMemo(
    () => new Set(flows.flatMap((f) => [endpointKey(f.src), endpointKey(f.dst)])).size,
    [flows],
  )
  const [level, setLevel] = useState<Level>(endpoints > GROUPS_FIRST ? 'groups' : 'workloads')
  const [selection, setSelection] = useState<Selection>()
  const [writing, setWriting] = useState<RuleDraft>()
  useEffect(() => {
    const el = box.current
    if (!el) return
    setWidth(Math.floor(el.clientWidth))
    const ro = new ResizeObserver(([e]) => e && setWidth(Math.floor(e.contentRect.width)))
    ro.observe(el)
    return () => ro.disconnect()
  }, [])
  const model = useMemo(
    () => (width > 0 ? buildMap(flows, level, width) : undefined),
    [flows, level, width],
  )
  useEffect(() => setSelection(undefined), [flows, level])
  const shown = selection ? flows.filter((f) => flowSelected(f, selection, level)) : flows
  return (
    <>
      <div class="map-bar">
        <fieldset class="inline">
          <legend>Map of</legend>
          {(['groups', 'workloads'] as const).map((l) => (
            <label key={l} class="radio">
              <input
                type="radio"
                name="map-level"
                checked={level === l}
                onChange={() => setLevel(l)}
              />
              {l === 'groups' ? 'Groups (app and env)' : 'Workloads'}
            </label>
          ))}
        </fieldset>
        <span class="legend">
          <span class="decision allowed">Allowed</span>{' '}
          <span class="decision potentially_blocked">Potentially blocked</span>{' '}
          <span class="decision blocked">Blocked</span>
        </span>
      </div>
      <figure class="map" ref={box}>
        {model && (
          <TrafficMap
            m={model}
            groupsLevel={level === 'groups'}
            selection={selection}
            onSelect={setSelection}
          />
        )}
        <figcaption class="sr-only">
          Select a group, an endpoint or a connection to list its flows below.
        </figcaption>
      </figure>
      <SelectionBar
        selection={selection}
        level={level}
        flows={shown}
        model={model}
        onClear={() => setSelection(undefined)}
        onWrite={(d) => setWriting(d)}
      />
      <FlowTable flows={shown} onWrite={(f) => setWriting(draftOfFlows([f], true, level))} />
      {writing && names && (
        <WriteRule draft={writing} names={names} onClose={() => setWriting(undefined)} />
      )}
    </>
  )
}

/** One side of a rule for an endpoint: its group's labels on the group map, else the workload. */
function sideOf(e: Flow['src'], level: Level): Actor[] {
  if (!e.workload) return []
  const labels = groupOf(e).labels
  if (level === 'groups' && labels.length > 0)
    return labels.map((l) => ({ label: { href: l.href } }))
  return [{ workload: { href: e.workload.href } }]
}

const uniqueActors = (as: Actor[]) => [...new Map(as.map((a) => [JSON.stringify(a), a])).values()]

/**
 * A rule that would allow these flows: their destinations on their ports, and their sources
 * when the rule is about one connection (a group's rule leaves the sources to choose).
 */
function draftOfFlows(flows: readonly Flow[], withSources: boolean, level: Level): RuleDraft {
  const ports = [
    ...new Map(
      flows.map((f) => [serviceText(f.service), { proto: f.service.proto, port: f.service.port }]),
    ).values(),
  ].map((p) => ({ proto: p.proto, ...(p.port !== undefined && { port: p.port }) }))
  return {
    action: 'allow',
    consumers: withSources ? uniqueActors(flows.flatMap((f) => sideOf(f.src, level))) : [],
    providers: uniqueActors(flows.flatMap((f) => sideOf(f.dst, level))),
    services: ports,
  }
}

function SelectionBar(props: {
  selection: Selection | undefined
  level: Level
  flows: Flow[]
  model: ReturnType<typeof buildMap> | undefined
  onClear: () => void
  onWrite: (d: RuleDraft) => void
}) {
  const s = props.selection
  if (!s || !props.model) return null
  const m = props.model
  const name = (k: string) => m.nodes.get(k)?.name ?? m.groups.find((g) => g.key === k)?.name ?? k
  const what =
    s.kind === 'edge'
      ? `${name(s.from)} → ${name(s.to)}`
      : s.kind === 'group'
        ? `group ${name(s.key)}`
        : name(s.key)
  // A group's rule is about what reaches it; an edge's, about that one connection.
  const inbound =
    s.kind === 'edge'
      ? props.flows
      : props.flows.filter((f) =>
          s.kind === 'group' ? groupOf(f.dst).key === s.key : endpointKey(f.dst) === s.key,
        )
  return (
    <div class="selection" role="region" aria-label="Selection">
      <p>
        <strong>Selected:</strong> {what}: {props.flows.length} flows.
      </p>
      <div class="buttons start">
        <button
          type="button"
          disabled={inbound.length === 0}
          onClick={() => props.onWrite(draftOfFlows(inbound, s.kind === 'edge', props.level))}
        >
          Write a rule for this
        </button>
        <button type="button" onClick={props.onClear}>
          Clear selection
        </button>
      </div>
    </div>
  )
}

/** Which ends reported a flow, and what the source decided where it differs. */
function reportedBy(f: Flow): string {
  const { source, destination } = f.reports
  if (!source) return 'destination'
  if (!destination) return 'source'
  return source.policy_decision === destination.policy_decision
    ? 'both'
    : `both (source: ${decisionName(source.policy_decision).toLowerCase()})`
}

const COLUMNS: Column<Flow>[] = [
  { name: 'Source', sort: (f) => f.src.workload?.name ?? f.src.ip },
  { name: 'Destination', sort: (f) => f.dst.workload?.name ?? f.dst.ip },
  { name: 'Service', sort: (f) => serviceText(f.service) },
  { name: 'Decision', sort: (f) => f.policy_decision },
  { name: 'Reported by' },
  { name: 'Connections', sort: (f) => f.num_connections },
  { name: 'Last seen', sort: (f) => f.timestamp_range.last_detected },
]

function FlowTable({ flows, onWrite }: { flows: Flow[]; onWrite: (f: Flow) => void }) {
  const view = useListView(flows, {
    text: (f) =>
      `${f.src.workload?.name ?? ''} ${f.src.ip} ${f.dst.workload?.name ?? ''} ${f.dst.ip} ${serviceText(f.service)} ${f.policy_decision}`,
    columns: COLUMNS,
  })
  const connections = flows.reduce((n, f) => n + f.num_connections, 0)
  return (
    <>
      <p class="count" role="status">
        {flows.length} flows, {connections} connections.
      </p>
      <div class="scroll">
        <table aria-label="Flows">
          <SortableHead columns={COLUMNS} view={view} action="Rule" />
          <tbody>
            {view.rows.map((f, i) => (
              <tr key={i}>
                <td>{f.src.workload?.name ?? f.src.ip}</td>
                <td>{f.dst.workload?.name ?? f.dst.ip}</td>
                <td>{serviceText(f.service)}</td>
                <td>
                  <span class={`decision ${f.policy_decision}`}>
                    {decisionName(f.policy_decision).toLowerCase()}
                  </span>
                  {f.dropped_downstream && (
                    <span class="tag warn">dropped by a later firewall</span>
                  )}
                </td>
                <td>{reportedBy(f)}</td>
                <td>{f.num_connections}</td>
                <td>{when(f.timestamp_range.last_detected)}</td>
                <td>
                  <button type="button" class="small" onClick={() => onWrite(f)}>
                    Write rule
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager view={view} label="Flow pages" />
    </>
  )
}

/** The rule form, filled from the map or a flow, in the rule set one chooses. */
function WriteRule(props: { draft: RuleDraft; names: Names; onClose: () => void }) {
  const sets = props.names.ruleSets
  const [rs, setRs] = useState(sets[0]?.href ?? '')
  const [done, setDone] = useState(false)
  const chosen = sets.find((s) => s.href === rs)
  return (
    <Dialog title="Write a rule" onClose={props.onClose} wide>
      {done ? (
        <>
          <p class="ok" role="status">
            The rule is in the draft of {chosen?.name}: <a href="#/provision">provision</a> it to
            enforce.
          </p>
          <div class="buttons">
            <button type="button" onClick={props.onClose}>
              Close
            </button>
          </div>
        </>
      ) : sets.length === 0 ? (
        <p>
          There is no rule set yet: add one under <a href="#/policy">Policy</a> first.
        </p>
      ) : (
        <>
          <label for="wr-set">Rule set</label>
          <select
            id="wr-set"
            value={rs}
            onChange={(e) => setRs((e.target as HTMLSelectElement).value)}
          >
            {sets.map((s) => (
              <option key={s.href} value={s.href}>
                {s.name}
              </option>
            ))}
          </select>
          {props.draft.consumers.length === 0 && (
            <p class="hint">
              Choose the sources: labels, workloads, or an IP list for addresses outside any
              workload.
            </p>
          )}
          {chosen && (
            <RuleForm
              key={chosen.href}
              rs={chosen}
              names={props.names}
              initial={props.draft}
              onDone={props.onClose}
              onSaved={() => setDone(true)}
              reload={() => undefined}
            />
          )}
        </>
      )}
    </Dialog>
  )
}
