import { ApiError, call, O, otherMessages } from '../api.js'
import { useLive } from '../hooks.js'
import { enforcementName } from '../names.js'
import { Errors, Labels, Page, TableHead, when } from '../ui.js'
import type { ApiEvent } from './events.js'
import { EventsTable } from './events.js'
import { ExplainForm, WorkloadRules } from './workload-rules.js'
import type { Workload } from './workloads.js'
import { addressesOf, EnforcementSelect, Health, ModeCell, VisibilitySelect } from './workloads.js'

interface Impact {
  impacts: {
    kind: string
    meaning: string
    hook: string
    family: string
    verdict: string
    traffic: string
    rule: { table: string; chain: string; index: number; text: string }
  }[]
  backend: string | null
  ruleset_read_at: string | null
}

const IMPACT_NAMES: Record<string, string> = {
  bypass: 'Bypass',
  override: 'Override',
  'pre-empt': 'Pre-empt',
  shadowed: 'Shadowed',
}
const TRAIL = [['#/workloads', 'Workloads']] as const

/** One workload: its facts, its host, the rules that reach it, a packet's path, its events. */
export function WorkloadPage({ id }: { id: string }) {
  const live = useLive(
    async () => {
      const w = await call<Workload>('GET', `${O}/workloads/${id}`)
      const [impact, events] = await Promise.all([
        w.agent
          ? call<Impact>('GET', `${O}/workloads/${id}/coexistence_impact`).catch(() => undefined)
          : undefined,
        call<ApiEvent[]>('GET', `${O}/events?max_results=500`),
      ])
      const mine = events.filter((e) => JSON.stringify(e).includes(`"${w.href}"`))
      return { w, impact, events: mine }
    },
    3000,
    [id],
  )
  const d = live.data
  if (live.error instanceof ApiError && live.error.status === 404)
    return (
      <Page title="Workload not found" trail={TRAIL}>
        <p>
          No workload has the id <code>{id}</code>: it may have been unpaired or deleted. Back to{' '}
          <a href="#/workloads">all workloads</a>.
        </p>
      </Page>
    )
  if (!d)
    return (
      <Page title="Workload" trail={TRAIL}>
        <Errors messages={otherMessages(live.error, [])} />
        {!live.error && (
          <p class="loading" role="status">
            Loading…
          </p>
        )}
      </Page>
    )
  const { w, impact } = d
  const host = w.palisade.host
  return (
    <Page title={w.name} trail={TRAIL}>
      <Errors messages={otherMessages(live.error, [])} />
      <dl class="facts">
        <dt>Hostname</dt>
        <dd>{w.hostname || '—'}</dd>
        <dt>IP addresses</dt>
        <dd>{addressesOf(w) || '—'}</dd>
        <dt>Labels</dt>
        <dd>{w.labels.length > 0 ? <Labels labels={w.labels} /> : 'none'}</dd>
        <dt>Enforcement</dt>
        <dd>
          {w.agent ? (
            <EnforcementSelect w={w} onSaved={() => void live.reload()} />
          ) : (
            <span class="muted">
              Not enforced: no agent ({enforcementName(w.enforcement_mode)})
            </span>
          )}
        </dd>
        <dt>Visibility</dt>
        <dd>
          <VisibilitySelect w={w} onSaved={() => void live.reload()} />
        </dd>
        <dt>Firewall mode</dt>
        <dd class="mode">
          <ModeCell w={w} />
        </dd>
        <dt>Health</dt>
        <dd>
          <Health w={w} /> {w.palisade.health_reason}
        </dd>
        <dt>Last heartbeat</dt>
        <dd>{w.agent ? when(w.agent.status.last_heartbeat_on) : '—'}</dd>
      </dl>

      <h2>Rules</h2>
      <WorkloadRules w={w} />

      <h2>Host survey</h2>
      {!w.agent && <p class="empty">No agent: nothing reports this host&apos;s firewalls.</p>}
      {w.agent && !host?.firewalls && (
        <p class="empty">The agent has not reported a survey of this host yet.</p>
      )}
      {host?.firewalls && (
        <div>
          <p>
            Firewalls found:{' '}
            {host.firewalls.length === 0
              ? 'none besides Palisade'
              : host.firewalls.map((f) => f.kind).join(', ')}
          </p>
          {(host.foreignTables ?? []).length > 0 && (
            <p>Foreign tables: {host.foreignTables?.join(', ')}</p>
          )}
          <ul class="recommendations">
            {(host.recommendations ?? []).map((r) => (
              <li key={r.message} class={`rec-${r.severity}`}>
                {r.message}
              </li>
            ))}
          </ul>
        </div>
      )}

      <h2>Coexistence impact</h2>
      <CoexistenceImpact w={w} impact={impact} />

      <h2>Explain a packet</h2>
      <ExplainForm w={w} />

      <h2>Events</h2>
      {d.events.length === 0 ? (
        <p class="empty">No events name this workload.</p>
      ) : (
        <EventsTable events={d.events.slice(0, 20)} />
      )}
    </Page>
  )
}

function CoexistenceImpact({ w, impact }: { w: Workload; impact: Impact | undefined }) {
  if (!w.agent) return <p class="empty">No agent: there is no host firewall to analyse.</p>
  if (!impact) return <p class="empty">The impact could not be read; it is retried shortly.</p>
  if (!impact.ruleset_read_at)
    return (
      <p class="empty">
        Unknown: the agent has not reported its host&apos;s ruleset yet, so whether another firewall
        changes what Palisade decides cannot be told.
      </p>
    )
  return (
    <>
      <p class="hint">
        From the ruleset the agent read at {when(impact.ruleset_read_at)} ({impact.backend}).
      </p>
      {impact.impacts.length === 0 ? (
        <p class="empty">No foreign rule changes what Palisade decides on this host.</p>
      ) : (
        <table aria-label="Coexistence impact">
          <TableHead columns={['Impact', 'Traffic', 'Foreign rule', 'Hook']} />
          <tbody>
            {impact.impacts.map((i, k) => (
              <tr key={k}>
                <td>
                  <strong>{IMPACT_NAMES[i.kind] ?? i.kind}</strong>
                  <span class="why">{i.meaning}</span>
                </td>
                <td>
                  {i.traffic} ({i.family})
                </td>
                <td>
                  <code>
                    {i.rule.table} {i.rule.chain}
                    {i.rule.index >= 0 ? ` #${i.rule.index}` : ''}
                  </code>
                  <span class="why">{i.rule.text}</span>
                </td>
                <td>{i.hook}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  )
}
