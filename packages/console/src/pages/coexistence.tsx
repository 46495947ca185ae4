import type { ModeResolution } from '@palisade/model'
import { resolveMode } from '@palisade/model'
import { useState } from 'preact/hooks'
import type { Label } from '../api.js'
import { call, labelText, messagesFor, O, otherMessages } from '../api.js'
import type { ScopeItem } from '../coexistence-check.js'
import { scopeConflicts } from '../coexistence-check.js'
import { useLive } from '../hooks.js'
import { firewallModeName } from '../names.js'
import { loadLabels, loadWorkloads } from '../policy-data.js'
import type { WorkloadDoc } from '../policy-snapshot.js'
import { firewallSettingsOf, workloadOf } from '../policy-snapshot.js'
import { Confirm, Dialog, Errors, LabelPicker, ListState, Page, TableHead } from '../ui.js'

type Item = ScopeItem
interface Settings {
  firewall_coexistence: Item[]
}

const ENFORCEMENT = [
  ['', 'All'],
  ['enforced', 'Enforced'],
  ['illuminated', 'Illuminated'],
] as const

const SETTINGS = `${O}/sec_policy/draft/firewall_settings`

interface Managed {
  name: string
  mode: (items: readonly Item[]) => ModeResolution
}

/** Settings > Security > Firewall Coexistence, as the product documentation describes it. */
export function CoexistencePage() {
  const live = useLive(async () => {
    const [draft, active, pendingList, labels, workloads] = await Promise.all([
      call<Settings>('GET', SETTINGS),
      call<Settings>('GET', `${O}/sec_policy/active/firewall_settings`).catch(() => undefined),
      call<Record<string, unknown[]>>('GET', `${O}/sec_policy/pending`),
      loadLabels(),
      loadWorkloads<WorkloadDoc & { agent: unknown }>(),
    ])
    // Pending as the server decides it: by content, so an edit undone leaves nothing pending.
    const pending = (pendingList.firewall_settings ?? []).length > 0
    // Only a host with an agent has a firewall mode; the rest is never programmed.
    const managed = workloads
      .filter((w) => w.agent)
      .map((w): Managed => ({
        name: w.name,
        mode: (items) =>
          resolveMode(workloadOf(w), firewallSettingsOf({ firewall_coexistence: items })),
      }))
    return { draft, active, pending, labels, managed }
  }, 5000)
  const [editing, setEditing] = useState<{ index: number | null; item: Item } | null>(null)
  const [removing, setRemoving] = useState<number>()
  const d = live.data
  const items = d?.draft.firewall_coexistence ?? []
  const activeItems = d?.active?.firewall_coexistence ?? []
  const pending = d?.pending ?? false
  const labelOf = (href: string) => d?.labels.find((l) => l.href === href)
  const matchedBy = (i: number) =>
    (d?.managed ?? []).filter((w) => {
      const r = w.mode(items).reason
      return r.kind === 'scope' && r.items.includes(i)
    })
  // What provisioning the draft would change, host by host.
  const changes = pending
    ? (d?.managed ?? []).flatMap((w) => {
        const [before, after] = [w.mode(activeItems).mode, w.mode(items).mode]
        return before === after ? [] : [{ name: w.name, before, after }]
      })
    : []
  const save = async (next: Item[]) => {
    await call('PUT', SETTINGS, { firewall_coexistence: next })
    await live.reload()
  }
  const scopeText = (it: Item) =>
    it.scope.length === 0
      ? 'All workloads'
      : it.scope.map((s) => {
          const l = labelOf(s.href)
          return l ? labelText(l) : 'deleted label'
        })

  return (
    <Page
      title="Firewall Coexistence"
      trail={[['', 'Settings › Security']]}
      actions={
        <button
          type="button"
          onClick={() => setEditing({ index: null, item: { scope: [], illumio_primary: true } })}
        >
          Add
        </button>
      }
    >
      <p class="intro">
        By default Palisade is the only firewall on a workload: its rules alone decide, and the
        rules of other firewalls are not consulted. Workloads in a scope below keep their other
        firewalls: Palisade is then either the <strong>primary</strong> firewall (its rules come
        first; what it blocks stays blocked, what it allows is passed on to the other firewalls) or{' '}
        <strong>not primary</strong> (the other firewalls may stand before or after it). Where
        several scopes match a workload, Palisade is primary if any of them says so.
      </p>
      {pending && (
        <div class="pending" role="status">
          <p>
            These settings are pending: they take effect when you{' '}
            <a href="#/provision">provision</a> them.
          </p>
          {changes.length > 0 && (
            <ul class="mode-changes" aria-label="Mode changes on provision">
              {changes.map((c) => (
                <li key={c.name}>
                  {c.name}: {firewallModeName(c.before)} → {firewallModeName(c.after)}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
      <Errors messages={live.error ? otherMessages(live.error, []) : []} />
      <ListState loading={!d} error={live.error} empty={false}>
        {null}
      </ListState>
      <table aria-label="Coexistence scopes">
        <TableHead
          columns={['#', 'Scope', 'Enforcement', 'Palisade is Primary Firewall', 'Workloads']}
          action="Actions"
        />
        <tbody>
          <tr class="default-row">
            <td>Default</td>
            <td>Every workload no scope below matches</td>
            <td>All</td>
            <td>Exclusive: Palisade is the only firewall</td>
            <td>
              {d ? d.managed.filter((w) => w.mode(items).reason.kind === 'no_match').length : '—'}
            </td>
            <td />
          </tr>
          {items.map((it, i) => {
            const matched = matchedBy(i)
            return (
              <tr key={i}>
                <td>{i + 1}</td>
                <td>
                  {it.scope.length === 0
                    ? 'All workloads'
                    : it.scope.map((s) => {
                        const l = labelOf(s.href)
                        return (
                          <span class="label" key={s.href}>
                            {l ? labelText(l) : 'deleted label'}
                          </span>
                        )
                      })}
                </td>
                <td>{ENFORCEMENT.find(([v]) => v === (it.workload_mode ?? ''))?.[1]}</td>
                <td>{it.illumio_primary ? 'Yes' : 'No'}</td>
                <td title={matched.map((w) => w.name).join(', ')}>{matched.length}</td>
                <td class="row-actions">
                  <button
                    type="button"
                    aria-label={`Edit scope ${i + 1}`}
                    onClick={() => setEditing({ index: i, item: it })}
                  >
                    Edit
                  </button>
                  <button
                    type="button"
                    class="danger"
                    aria-label={`Remove scope ${i + 1}`}
                    onClick={() => setRemoving(i)}
                  >
                    Remove
                  </button>
                </td>
              </tr>
            )
          })}
        </tbody>
      </table>
      <p class="hint">
        Workloads: the hosts with an agent each scope matches in the draft. A workload page names
        the scope it matched by this number.
      </p>
      {removing !== undefined && items[removing] && (
        <Confirm
          title={`Remove coexistence scope #${removing + 1}?`}
          confirm="Remove scope"
          danger
          onClose={() => setRemoving(undefined)}
          onConfirm={() => save(items.filter((_, k) => k !== removing))}
        >
          <p>
            Scope: {[scopeText(items[removing])].flat().join(', ')};{' '}
            {items[removing].illumio_primary ? 'Palisade primary' : 'Palisade not primary'}.
          </p>
          <RemovalImpact
            managed={d?.managed ?? []}
            before={items}
            after={items.filter((_, k) => k !== removing)}
          />
          <p>The removal waits in the draft until you provision it.</p>
        </Confirm>
      )}
      {editing && d && (
        <ScopeDialog
          title={editing.index === null ? 'Add coexistence scope' : 'Edit coexistence scope'}
          labels={d.labels}
          items={items}
          initial={editing.item}
          index={editing.index}
          onCancel={() => setEditing(null)}
          onSave={async (item) => {
            const next = [...items]
            if (editing.index === null) next.push(item)
            else next[editing.index] = item
            await save(next)
            setEditing(null)
          }}
        />
      )}
    </Page>
  )
}

function RemovalImpact(props: {
  managed: readonly Managed[]
  before: readonly Item[]
  after: readonly Item[]
}) {
  const changed = props.managed.flatMap((w) => {
    const [a, b] = [w.mode(props.before).mode, w.mode(props.after).mode]
    return a === b ? [] : [`${w.name}: ${firewallModeName(a)} → ${firewallModeName(b)}`]
  })
  if (changed.length === 0) return <p>No workload with an agent changes mode.</p>
  return (
    <>
      <p>Once provisioned, {changed.length} workloads change mode:</p>
      <ul>
        {changed.slice(0, 20).map((c) => (
          <li key={c}>{c}</li>
        ))}
        {changed.length > 20 && <li>and {changed.length - 20} more</li>}
      </ul>
    </>
  )
}

function ScopeDialog(props: {
  title: string
  labels: Label[]
  items: readonly Item[]
  initial: Item
  index: number | null
  onCancel: () => void
  onSave: (item: Item) => Promise<void>
}) {
  const [scope, setScope] = useState(props.initial.scope.map((s) => s.href))
  const [mode, setMode] = useState<string>(props.initial.workload_mode ?? '')
  const [primary, setPrimary] = useState(props.initial.illumio_primary)
  const [error, setError] = useState<unknown>()
  const [busy, setBusy] = useState(false)
  const [acknowledged, setAcknowledged] = useState<string>()
  const at = `$.firewall_coexistence[${props.index ?? props.items.length}]`
  const fields = {
    scope: `${at}.scope`,
    mode: `${at}.workload_mode`,
    primary: `${at}.illumio_primary`,
  }
  const item: Item = {
    scope: scope.map((href) => ({ href })),
    illumio_primary: primary,
    ...(mode && { workload_mode: mode as Item['workload_mode'] }),
  }
  const conflicts = scopeConflicts(props.items, item, props.index)
  const duplicate = conflicts.find((c) => c.kind === 'duplicate')
  const contradiction = conflicts.find((c) => c.kind === 'contradiction')
  const contradictionKey = contradiction ? JSON.stringify(item) : undefined
  const submit = async (e: Event) => {
    e.preventDefault()
    if (duplicate) return
    if (contradictionKey && acknowledged !== contradictionKey) {
      setAcknowledged(contradictionKey)
      return
    }
    setBusy(true)
    try {
      await props.onSave(item)
    } catch (err) {
      // The dialog stays open with what was entered, and says what the server refused.
      setError(err)
    } finally {
      setBusy(false)
    }
  }
  return (
    <Dialog title={props.title} onClose={props.onCancel}>
      <form onSubmit={(e) => void submit(e)}>
        <Errors messages={otherMessages(error, Object.values(fields))} />
        <fieldset aria-describedby="scope-errors">
          <legend>Scope</legend>
          <p class="hint">Workloads with all of these labels; none chosen means all workloads.</p>
          <LabelPicker labels={props.labels} value={scope} onChange={setScope} idPrefix="scope" />
          <Errors id="scope-errors" messages={messagesFor(error, fields.scope)} />
        </fieldset>
        <fieldset>
          <legend>Enforcement</legend>
          {ENFORCEMENT.map(([v, text]) => (
            <label key={v} class="radio">
              <input
                type="radio"
                name="enforcement"
                value={v}
                checked={mode === v}
                onChange={() => setMode(v)}
              />
              {text}
            </label>
          ))}
          <p class="hint">
            Enforced: workloads in Selective or Full enforcement. Illuminated: workloads in
            Visibility only.
          </p>
          <Errors messages={messagesFor(error, fields.mode)} />
        </fieldset>
        <fieldset>
          <legend>Palisade is Primary Firewall</legend>
          <label class="radio">
            <input
              type="radio"
              name="primary"
              checked={primary}
              onChange={() => setPrimary(true)}
            />
            Yes
          </label>
          <label class="radio">
            <input
              type="radio"
              name="primary"
              checked={!primary}
              onChange={() => setPrimary(false)}
            />
            No
          </label>
          <Errors messages={messagesFor(error, fields.primary)} />
        </fieldset>
        {duplicate && (
          <p class="errors" role="alert">
            Scope #{duplicate.number} already says exactly this: edit that one instead.
          </p>
        )}
        {contradiction && (
          <p class="warning" role="alert">
            Scope #{contradiction.number} has the same labels and enforcement but says Palisade is{' '}
            {primary ? 'not primary' : 'primary'}. Where both match, Palisade is primary (the safer
            choice wins), so {primary ? `#${contradiction.number}` : 'this scope'} would have no
            effect.
            {acknowledged === contradictionKey && ' Save again to keep both.'}
          </p>
        )}
        <div class="buttons">
          <button type="button" onClick={props.onCancel}>
            Cancel
          </button>
          <button type="submit" disabled={busy || !!duplicate}>
            {contradiction && acknowledged === contradictionKey ? 'Save anyway' : 'Save'}
          </button>
        </div>
      </form>
    </Dialog>
  )
}
