import type { ComponentChildren } from 'preact'
import { useState } from 'preact/hooks'
import { callList, nameOfHref, O, otherMessages } from '../api.js'
import { useLive } from '../hooks.js'
import { Pager, useListView } from '../list.js'
import { eventTypeName, severityName } from '../names.js'
import { loadLabels, loadWorkloads } from '../policy-data.js'
import { Errors, ListState, Page, TableHead, TimeSelect, when } from '../ui.js'

export interface ApiEvent {
  href: string
  timestamp: string
  event_type: string
  severity: string
  status: string | null
  created_by: Record<string, { href?: string; username?: string; hostname?: string }>
  resource_changes: {
    resource: Record<string, { href?: string }>
    change_type: string
    changes: Record<string, { before?: unknown; after?: unknown }>
  }[]
  notifications: { notification_type: string; info: Record<string, unknown> }[]
}

const SEVERITIES = ['', 'err', 'warning', 'info']
const EVENT_TYPES = [
  'agent.tampering',
  'agent.health',
  'agent.firewall_apply_failed',
  'agent.activate',
  'agent.goodbye',
  'agent.upgrade',
  'agent.upgrade_failed',
  'agents.upgrade',
  'firewall_settings.update',
  'sec_policy.create',
  'rule_set.create',
  'rule_set.update',
  'sec_rule.create',
  'deny_rule.create',
  'label.create',
  'workload.update',
  'user.sign_in',
]

/** A workload's href as a link to its page, with its name when the console knows it. */
function HrefLink({ href }: { href: string }) {
  const name = nameOfHref(href)
  const m = /^\/orgs\/\d+\/workloads\/([^/]+)$/.exec(href)
  if (m) return <a href={`#/workloads/${m[1]}`}>{name ?? 'workload'}</a>
  return name ? <span title={href}>{name}</span> : <code>{href}</code>
}

const actor = (e: ApiEvent): ComponentChildren => {
  const [kind, v] = Object.entries(e.created_by)[0] ?? ['?', {}]
  if (v.username) return `user ${v.username}`
  if (kind === 'agent' || kind === 'ven')
    return (
      <>
        agent on {v.hostname ?? ''}
        {v.href && !v.hostname && <HrefLink href={v.href} />}
      </>
    )
  return `${kind.replace(/_/g, ' ')} ${v.hostname ?? ''}`.trim()
}

const HREF = /^\/orgs\/\d+\/[\w/-]+$/

/** A value of a change, readably: hrefs by name, lists and objects as short lines. */
function Value({ v }: { v: unknown }): ComponentChildren {
  if (v === null || v === undefined) return <span class="muted">none</span>
  if (typeof v === 'string') return HREF.test(v) ? <HrefLink href={v} /> : v
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  if (Array.isArray(v)) {
    if (v.length === 0) return <span class="muted">none</span>
    return (
      <ul class="values">
        {(v as unknown[]).map((x, i) => (
          <li key={i}>
            <Value v={x} />
          </li>
        ))}
      </ul>
    )
  }
  const o = v as Record<string, unknown>
  const keys = Object.keys(o)
  if (keys.length === 1 && keys[0] === 'href') return <Value v={o.href} />
  return (
    <dl class="kv">
      {keys.map((k) => [
        <dt key={`${k}-k`}>{k.replace(/_/g, ' ')}</dt>,
        <dd key={`${k}-v`}>
          <Value v={o[k]} />
        </dd>,
      ])}
    </dl>
  )
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b)

/** What changed, before and after, and (for tampering) which process did it. */
export function EventDetails({ e }: { e: ApiEvent }) {
  return (
    <div class="event-details">
      {e.resource_changes.map((rc, i) => {
        const [kind, ref] = Object.entries(rc.resource)[0] ?? ['', {}]
        const fields = Object.entries(rc.changes).filter(([, v]) => !same(v.before, v.after))
        return (
          <div key={i}>
            <p>
              {rc.change_type.charAt(0).toUpperCase() + rc.change_type.slice(1)} of{' '}
              {kind.replace(/_/g, ' ')} {ref?.href && <HrefLink href={ref.href} />}
            </p>
            {fields.length > 0 && (
              <table class="changes" aria-label="Changes">
                <TableHead columns={['Field', 'Before', 'After']} />
                <tbody>
                  {fields.map(([k, v]) => (
                    <tr key={k}>
                      <td>{k.replace(/_/g, ' ')}</td>
                      <td>
                        <Value v={v.before} />
                      </td>
                      <td>
                        <Value v={v.after} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </div>
        )
      })}
      {e.notifications
        .filter((n) => Object.keys(n.info).length > 0)
        .map((n, i) => (
          <div key={i} class="info">
            <Value v={n.info} />
          </div>
        ))}
    </div>
  )
}

export function EventsTable({ events }: { events: readonly ApiEvent[] }) {
  const [open, setOpen] = useState<string>()
  return (
    <table aria-label="Events">
      <TableHead columns={['Time', 'Type', 'Severity', 'By']} action="Details" />
      <tbody>
        {events.map((e) => [
          <tr key={e.href} class={`sev-${e.severity}`}>
            <td>{when(e.timestamp)}</td>
            <td>
              {eventTypeName(e.event_type)}
              <span class="why">{e.event_type}</span>
            </td>
            <td>{severityName(e.severity)}</td>
            <td>{actor(e)}</td>
            <td>
              <button
                type="button"
                aria-expanded={open === e.href}
                onClick={() => setOpen(open === e.href ? undefined : e.href)}
              >
                {open === e.href ? 'Hide' : 'Details'}
              </button>
            </td>
          </tr>,
          open === e.href && (
            <tr key={`${e.href}-d`}>
              <td colSpan={5}>
                <EventDetails e={e} />
              </td>
            </tr>
          ),
        ])}
      </tbody>
    </table>
  )
}

const FETCHED = 500

export function EventsPage() {
  // What is typed stays while the list refreshes; it filters once submitted.
  const [typing, setTyping] = useState('')
  const [type, setType] = useState('')
  const [severity, setSeverity] = useState('')
  const [since, setSince] = useState('')
  /** Older than the latest: the time of the oldest event of the window before. */
  const [before, setBefore] = useState<string>()
  const live = useLive(
    async () => {
      const q = new URLSearchParams({ max_results: String(FETCHED) })
      if (type) q.set('event_type', type)
      if (severity) q.set('severity', severity)
      if (since)
        q.set('timestamp[gte]', new Date(Date.now() - Number(since) * 3_600_000).toISOString())
      if (before) q.set('timestamp[lte]', before)
      return callList<ApiEvent>(`${O}/events?${q.toString()}`)
    },
    before ? null : 3000,
    [type, severity, since, before],
  )
  // Names for the hrefs events carry; they change far less often than events come.
  useLive(() => Promise.all([loadLabels(), loadWorkloads()]), 30_000)
  const events = live.data?.items ?? []
  const view = useListView(events, { text: () => '', columns: [] })
  return (
    <Page title="Events">
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault()
          setType(typing.trim())
        }}
        aria-label="Event filters"
      >
        <div>
          <label for="ev-type">Type</label>
          <input
            id="ev-type"
            list="event-types"
            placeholder="e.g. agent.tampering"
            value={typing}
            onInput={(e) => setTyping((e.target as HTMLInputElement).value)}
            onChange={(e) => setType((e.target as HTMLInputElement).value.trim())}
          />
          <datalist id="event-types">
            {EVENT_TYPES.map((t) => (
              <option key={t} value={t} />
            ))}
          </datalist>
        </div>
        <div>
          <label for="ev-sev">Severity</label>
          <select
            id="ev-sev"
            value={severity}
            onChange={(e) => setSeverity((e.target as HTMLSelectElement).value)}
          >
            {SEVERITIES.map((s) => (
              <option key={s} value={s}>
                {s ? severityName(s) : 'Any'}
              </option>
            ))}
          </select>
        </div>
        <div>
          <TimeSelect id="ev-since" value={since} onValue={setSince} anyTime />
        </div>
        <button type="submit">Filter</button>
      </form>
      <Errors messages={live.error ? otherMessages(live.error, []) : []} />
      <ListState loading={!live.data} error={live.error} empty={events.length === 0}>
        No events match{type || severity || since ? ' these filters' : ''}.
      </ListState>
      {live.data && events.length > 0 && (
        <p class="count" role="status">
          {before ? `Events up to ${when(before)}: ` : ''}
          {live.data.total > events.length
            ? `the latest ${events.length} of ${live.data.total}.`
            : `${events.length} event${events.length === 1 ? '' : 's'}.`}
        </p>
      )}
      {view.rows.length > 0 && <EventsTable events={view.rows} />}
      <Pager view={view} label="Event pages" />
      <div class="buttons start">
        {live.data && live.data.total > events.length && (
          <button
            type="button"
            onClick={() => {
              view.setPage(0)
              setBefore(events[events.length - 1]?.timestamp)
            }}
          >
            Older events
          </button>
        )}
        {before && (
          <button
            type="button"
            onClick={() => {
              view.setPage(0)
              setBefore(undefined)
            }}
          >
            Back to the latest
          </button>
        )}
      </div>
    </Page>
  )
}
