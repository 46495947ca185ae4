import { useState } from 'preact/hooks'
import type { Label } from '../api.js'
import { call, labelText, messagesFor, O, otherMessages } from '../api.js'
import { useLive } from '../hooks.js'
import { Dialog, Errors, LabelPicker, Page, TableHead } from '../ui.js'

interface Item {
  scope: { href: string }[]
  illumio_primary: boolean
  workload_mode?: 'enforced' | 'illuminated'
}
interface Settings {
  firewall_coexistence: Item[]
}

const ENFORCEMENT = [
  ['', 'All'],
  ['enforced', 'Enforced'],
  ['illuminated', 'Illuminated'],
] as const

const SETTINGS = `${O}/sec_policy/draft/firewall_settings`

/** Settings > Security > Firewall Coexistence, as the product documentation describes it. */
export function CoexistencePage() {
  const live = useLive(async () => {
    const [draft, active, labels] = await Promise.all([
      call<Settings>('GET', SETTINGS),
      call<Settings>('GET', `${O}/sec_policy/active/firewall_settings`).catch(() => undefined),
      call<Label[]>('GET', `${O}/labels?max_results=10000`),
    ])
    return { draft, active, labels }
  }, 5000)
  const [editing, setEditing] = useState<{ index: number | null; item: Item } | null>(null)
  const [error, setError] = useState<unknown>()
  const d = live.data
  const items = d?.draft.firewall_coexistence ?? []
  const pending =
    d !== undefined &&
    JSON.stringify(items) !== JSON.stringify(d.active?.firewall_coexistence ?? [])
  const labelOf = (href: string) => d?.labels.find((l) => l.href === href)

  const save = async (next: Item[]) => {
    setError(undefined)
    await call('PUT', SETTINGS, { firewall_coexistence: next })
    await live.reload()
  }
  const remove = async (i: number) => {
    try {
      await save(items.filter((_, k) => k !== i))
    } catch (e) {
      setError(e)
    }
  }

  return (
    <Page
      title="Firewall Coexistence"
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
        <strong>not primary</strong> (the other firewalls may stand before or after it).
      </p>
      {pending && (
        <p class="pending" role="status">
          These settings are pending: they take effect when you <a href="#/provision">provision</a>{' '}
          them.
        </p>
      )}
      <Errors messages={otherMessages(error, [])} />
      <Errors messages={live.error ? otherMessages(live.error, []) : []} />
      <table aria-label="Coexistence scopes">
        <TableHead
          columns={['Scope', 'Enforcement', 'Palisade is Primary Firewall']}
          action="Actions"
        />
        <tbody>
          {items.length === 0 && (
            <tr>
              <td colSpan={4} class="empty">
                No coexistence scopes: Palisade is the exclusive firewall on every workload.
              </td>
            </tr>
          )}
          {items.map((it, i) => (
            <tr key={i}>
              <td>
                {it.scope.length === 0
                  ? 'All workloads'
                  : it.scope.map((s) => {
                      const l = labelOf(s.href)
                      return (
                        <span class="label" key={s.href}>
                          {l ? labelText(l) : s.href}
                        </span>
                      )
                    })}
              </td>
              <td>{ENFORCEMENT.find(([v]) => v === (it.workload_mode ?? ''))?.[1]}</td>
              <td>{it.illumio_primary ? 'Yes' : 'No'}</td>
              <td class="row-actions">
                <button type="button" onClick={() => setEditing({ index: i, item: it })}>
                  Edit
                </button>
                <button type="button" class="danger" onClick={() => void remove(i)}>
                  Remove
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {editing && d && (
        <ScopeDialog
          title={editing.index === null ? 'Add coexistence scope' : 'Edit coexistence scope'}
          labels={d.labels}
          initial={editing.item}
          index={editing.index ?? items.length}
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

function ScopeDialog(props: {
  title: string
  labels: Label[]
  initial: Item
  index: number
  onCancel: () => void
  onSave: (item: Item) => Promise<void>
}) {
  const [scope, setScope] = useState(props.initial.scope.map((s) => s.href))
  const [mode, setMode] = useState<string>(props.initial.workload_mode ?? '')
  const [primary, setPrimary] = useState(props.initial.illumio_primary)
  const [error, setError] = useState<unknown>()
  const [busy, setBusy] = useState(false)
  const at = `$.firewall_coexistence[${props.index}]`
  const fields = {
    scope: `${at}.scope`,
    mode: `${at}.workload_mode`,
    primary: `${at}.illumio_primary`,
  }
  const submit = async (e: Event) => {
    e.preventDefault()
    setBusy(true)
    try {
      await props.onSave({
        scope: scope.map((href) => ({ href })),
        illumio_primary: primary,
        ...(mode && { workload_mode: mode as Item['workload_mode'] }),
      })
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
        <div class="buttons">
          <button type="button" onClick={props.onCancel}>
            Cancel
          </button>
          <button type="submit" disabled={busy}>
            Save
          </button>
        </div>
      </form>
    </Dialog>
  )
}
