import { useState } from 'preact/hooks'
import { call, O, otherMessages } from '../api.js'
import { useLive } from '../hooks.js'
import { Errors, Page, TableHead, TimeSelect, when } from '../ui.js'

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
const actor = (e: ApiEvent) => {
  const [kind, v] = Object.entries(e.created_by)[0] ?? ['?', {}]
  return `${kind} ${v.username ?? v.hostname ?? v.href ?? ''}`.trim()
}

/** What changed, before and after, and (for tampering) which process did it. */
export function EventDetails({ e }: { e: ApiEvent }) {
  return (
    <div class="event-details">
      {e.resource_changes.map((rc, i) => (
        <div key={i}>
          <p>
            {rc.change_type} {Object.keys(rc.resource)[0]}{' '}
            <code>{Object.values(rc.resource)[0]?.href}</code>
          </p>
          {Object.keys(rc.changes).length > 0 && (
            <table class="changes" aria-label="Changes">
              <TableHead columns={['Field', 'Before', 'After']} />
              <tbody>
                {Object.entries(rc.changes).map(([k, v]) => (
                  <tr key={k}>
                    <td>{k}</td>
                    <td>
                      <pre>{JSON.stringify(v.before ?? null, null, 1)}</pre>
                    </td>
                    <td>
                      <pre>{JSON.stringify(v.after ?? null, null, 1)}</pre>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      ))}
      {e.notifications.map((n, i) => (
        <pre key={i} class="info">
          {JSON.stringify(n.info, null, 2)}
        </pre>
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
            <td>{e.event_type}</td>
            <td>{e.severity}</td>
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

export function EventsPage() {
  const [type, setType] = useState('')
  const [severity, setSeverity] = useState('')
  const [since, setSince] = useState('')
  const live = useLive(
    () => {
      const q = new URLSearchParams({ max_results: '500' })
      if (type) q.set('event_type', type)
      if (severity) q.set('severity', severity)
      if (since)
        q.set('timestamp[gte]', new Date(Date.now() - Number(since) * 3_600_000).toISOString())
      return call<ApiEvent[]>('GET', `${O}/events?${q.toString()}`)
    },
    3000,
    [type, severity, since],
  )
  return (
    <Page title="Events">
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Event filters">
        <label for="ev-type">Type</label>
        <input
          id="ev-type"
          placeholder="e.g. agent.tampering"
          value={type}
          onChange={(e) => setType((e.target as HTMLInputElement).value.trim())}
        />
        <label for="ev-sev">Severity</label>
        <select
          id="ev-sev"
          value={severity}
          onChange={(e) => setSeverity((e.target as HTMLSelectElement).value)}
        >
          {SEVERITIES.map((s) => (
            <option key={s} value={s}>
              {s || 'any'}
            </option>
          ))}
        </select>
        <TimeSelect id="ev-since" value={since} onValue={setSince} anyTime />
      </form>
      <Errors messages={live.error ? otherMessages(live.error, []) : []} />
      <EventsTable events={live.data ?? []} />
    </Page>
  )
}
