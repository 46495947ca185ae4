import { useState } from 'preact/hooks'
import type { Label } from '../api.js'
import { ENFORCEMENT_MODES, VISIBILITY_LEVELS } from '@palisade/model'
import { call, O, otherMessages } from '../api.js'
import { useLive } from '../hooks.js'
import { Errors, Labels, Page, TableHead, when } from '../ui.js'
import type { ApiEvent } from './events.js'
import { EventsTable } from './events.js'

export interface Workload {
  href: string
  name: string
  hostname: string
  managed: boolean
  enforcement_mode: string
  visibility_level: string
  labels: Label[]
  interfaces: { name: string; address: string }[]
  agent: {
    status: {
      status: string
      security_policy_sync_state: string
      security_policy_applied_version: number | null
      last_heartbeat_on: string | null
    }
  } | null
  palisade: {
    firewall_mode: string
    firewall_mode_reason: string
    firewall_mode_matched_scopes: Label[][]
    host?: {
      firewalls?: { kind: string; evidence: string[] }[]
      foreignTables?: string[]
      recommendations?: { severity: string; message: string }[]
    }
    tampering?: { condition: string; repairs: number } | null
    health?: string | null
    health_reason?: string | null
  }
}

const MODE_NAMES: Record<string, string> = {
  exclusive: 'Exclusive',
  coexistence_primary: 'Coexistence, primary',
  coexistence_non_primary: 'Coexistence, non-primary',
}

const idOf = (href: string) => href.split('/').pop() ?? ''

function Editable(props: {
  w: Workload
  field: 'enforcement_mode' | 'visibility_level'
  values: readonly string[]
  onSaved: () => void
  onError: (e: unknown) => void
}) {
  const label = props.field === 'enforcement_mode' ? 'Enforcement' : 'Visibility'
  return (
    <select
      aria-label={`${label} of ${props.w.name}`}
      value={props.w[props.field]}
      onChange={(e) => {
        call('PUT', `/api/v2${props.w.href}`, {
          [props.field]: (e.target as HTMLSelectElement).value,
        }).then(props.onSaved, props.onError)
      }}
    >
      {props.values.map((v) => (
        <option key={v} value={v}>
          {v}
        </option>
      ))}
    </select>
  )
}

function Health({ w }: { w: Workload }) {
  if (!w.agent) return <span class="muted">unmanaged</span>
  const t = w.palisade.tampering
  return (
    <span>
      <span class={`health ${w.palisade.health ?? 'unknown'}`}>
        {w.palisade.health ?? 'unknown'}
      </span>
      {w.agent.status.status !== 'active' && <span class="tag warn">{w.agent.status.status}</span>}
      {t && t.condition !== 'none' && (
        <span class="tag warn" title={`${t.repairs} repairs`}>
          tampering: {t.condition}
        </span>
      )}
    </span>
  )
}

export function WorkloadsPage() {
  const live = useLive(() => call<Workload[]>('GET', `${O}/workloads?max_results=10000`), 3000)
  const [error, setError] = useState<unknown>()
  return (
    <Page title="Workloads">
      <Errors messages={otherMessages(error ?? live.error, [])} />
      <div class="scroll">
        <table aria-label="Workloads">
          <TableHead
            columns={[
              'Name',
              'Labels',
              'Enforcement',
              'Visibility',
              'Firewall mode',
              'Health',
              'Policy sync',
            ]}
          />
          <tbody>
            {(live.data ?? []).map((w) => (
              <tr key={w.href} data-workload={w.name}>
                <td>
                  <a href={`#/workloads/${idOf(w.href)}`}>{w.name}</a>
                </td>
                <td>
                  <Labels labels={w.labels} />
                </td>
                <td>
                  <Editable
                    w={w}
                    field="enforcement_mode"
                    values={ENFORCEMENT_MODES}
                    onSaved={() => void live.reload()}
                    onError={setError}
                  />
                </td>
                <td>
                  <Editable
                    w={w}
                    field="visibility_level"
                    values={VISIBILITY_LEVELS}
                    onSaved={() => void live.reload()}
                    onError={setError}
                  />
                </td>
                <td class="mode">
                  <strong>
                    {MODE_NAMES[w.palisade.firewall_mode] ?? w.palisade.firewall_mode}
                  </strong>
                  <span class="why">{w.palisade.firewall_mode_reason}</span>
                  {w.palisade.firewall_mode_matched_scopes.map((scope, i) => (
                    <span class="why" key={i}>
                      {scope.length === 0 ? 'all workloads' : <Labels labels={scope} />}
                    </span>
                  ))}
                </td>
                <td>
                  <Health w={w} />
                </td>
                <td>
                  {w.agent ? (
                    <span>
                      {w.agent.status.security_policy_sync_state}
                      {w.agent.status.security_policy_applied_version !== null &&
                        ` (v${w.agent.status.security_policy_applied_version})`}
                    </span>
                  ) : (
                    '—'
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {live.data?.length === 0 && (
        <p class="empty">
          No workloads yet: pair an agent (see <a href="#/pairing">Pairing</a>).
        </p>
      )}
    </Page>
  )
}

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
      const mine = events.filter((e) => JSON.stringify(e).includes(w.href))
      return { w, impact, events: mine }
    },
    3000,
    [id],
  )
  const d = live.data
  if (!d)
    return (
      <Page title="Workload">
        <Errors messages={otherMessages(live.error, [])} />
      </Page>
    )
  const { w, impact } = d
  const host = w.palisade.host
  return (
    <Page title={w.name}>
      <dl class="facts">
        <dt>Hostname</dt>
        <dd>{w.hostname}</dd>
        <dt>Addresses</dt>
        <dd>{w.interfaces.map((i) => i.address).join(', ')}</dd>
        <dt>Labels</dt>
        <dd>
          <Labels labels={w.labels} />
        </dd>
        <dt>Enforcement</dt>
        <dd>{w.enforcement_mode}</dd>
        <dt>Visibility</dt>
        <dd>{w.visibility_level}</dd>
        <dt>Firewall mode</dt>
        <dd>
          {MODE_NAMES[w.palisade.firewall_mode]} — {w.palisade.firewall_mode_reason}
        </dd>
        <dt>Health</dt>
        <dd>
          <Health w={w} /> {w.palisade.health_reason}
        </dd>
        <dt>Last heartbeat</dt>
        <dd>{when(w.agent?.status.last_heartbeat_on)}</dd>
      </dl>
      <h2>Host survey</h2>
      {!host && <p class="empty">Unmanaged: no agent reports this host's firewalls.</p>}
      {host && (
        <div>
          <p>
            Firewalls found:{' '}
            {(host.firewalls ?? []).length === 0
              ? 'none besides Palisade'
              : host.firewalls?.map((f) => f.kind).join(', ')}
          </p>
          {(host.foreignTables ?? []).length > 0 && (
            <p>Foreign tables: {host.foreignTables?.join(', ')}</p>
          )}
          <ul class="recommendations">
            {(host.recommendations ?? []).map((r) => (
              <li key={r.message} class={r.severity}>
                {r.message}
              </li>
            ))}
          </ul>
        </div>
      )}
      <h2>Coexistence impact</h2>
      {impact && (
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
                      <strong>{i.kind}</strong>
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
      )}
      <h2>Events</h2>
      <EventsTable events={d.events} />
    </Page>
  )
}
