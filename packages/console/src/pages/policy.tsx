import type { ComponentChildren } from 'preact'
import { useState } from 'preact/hooks'
import type { Label } from '../api.js'
import { call, labelText, messagesFor, O, otherMessages } from '../api.js'
import { useLive } from '../hooks.js'
import { Pager, SearchBox, useListView } from '../list.js'
import { MultiPicker } from '../picker.js'
import { loadLabels, loadPolicy, loadWorkloads } from '../policy-data.js'
import { parsePortsChecked, portsText } from '../policy-text.js'
import { Confirm, Errors, ListState, Page, TableHead, TextField } from '../ui.js'
import type { IpList, LabelGroup, RuleSet, Service } from './rule-sets.js'
import { RuleSetsTab } from './rule-sets.js'

const DRAFT = `${O}/sec_policy/draft`
const TABS = ['Labels', 'Label groups', 'Services', 'IP lists', 'Rule sets'] as const
type Tab = (typeof TABS)[number]

export function PolicyPage() {
  const [tab, setTab] = useState<Tab>('Labels')
  const live = useLive(async () => {
    const [labels, draft, active, workloads] = await Promise.all([
      loadLabels(),
      loadPolicy('draft'),
      loadPolicy('active'),
      loadWorkloads(),
    ])
    return {
      labels,
      services: draft.services as unknown as Service[],
      ipLists: draft.ipLists as unknown as IpList[],
      labelGroups: draft.labelGroups as unknown as LabelGroup[],
      ruleSets: draft.ruleSets as unknown as RuleSet[],
      activeRuleSets: active.ruleSets as unknown as RuleSet[],
      workloads,
    }
  }, 5000)
  const d = live.data
  const reload = () => void live.reload()
  return (
    <Page title="Policy">
      <div role="tablist" aria-label="Policy objects" class="tabs">
        {TABS.map((t) => (
          <button
            key={t}
            id={`tab-${t.replace(/\W/g, '-')}`}
            type="button"
            role="tab"
            aria-selected={tab === t}
            aria-controls="policy-panel"
            onClick={() => setTab(t)}
          >
            {t}
          </button>
        ))}
      </div>
      <div role="tabpanel" id="policy-panel" aria-labelledby={`tab-${tab.replace(/\W/g, '-')}`}>
        {tab !== 'Labels' && (
          <p class="hint">
            Changes to {tab.toLowerCase()} go to the draft: <a href="#/provision">provision</a> them
            to enforce.
          </p>
        )}
        <Errors messages={otherMessages(live.error, [])} />
        <ListState loading={!d} error={live.error} empty={false}>
          {null}
        </ListState>
        {d && tab === 'Labels' && <LabelsTab labels={d.labels} reload={reload} />}
        {d && tab === 'Label groups' && (
          <LabelGroupsTab groups={d.labelGroups} labels={d.labels} reload={reload} />
        )}
        {d && tab === 'Services' && <ServicesTab services={d.services} reload={reload} />}
        {d && tab === 'IP lists' && <IpListsTab lists={d.ipLists} reload={reload} />}
        {d && tab === 'Rule sets' && (
          <RuleSetsTab
            sets={d.ruleSets}
            active={d.activeRuleSets}
            names={d}
            labels={d.labels}
            reload={reload}
          />
        )}
      </div>
    </Page>
  )
}

/** A create-or-edit form's state: the href being edited (or none), the error of the last save. */
export function useEditor() {
  const [editing, setEditing] = useState<string>()
  const [error, setError] = useState<unknown>()
  const run = async (f: () => Promise<unknown>, after: () => void) => {
    setError(undefined)
    try {
      await f()
      setEditing(undefined)
      after()
    } catch (e) {
      setError(e)
    }
  }
  return { editing, setEditing, error, setError, run }
}

interface Field {
  readonly key: string
  readonly label: string
  /** Where the API's messages about this field point. */
  readonly apiPath: string
  readonly multiline?: boolean
  readonly placeholder?: string
  /** The field names the object and cannot change once it exists. */
  readonly fixed?: boolean
  /** Reads what was typed; a message says what is wrong with it before anything is sent. */
  readonly check?: (text: string) => string[]
}

/**
 * The list of one kind of object with a create-or-edit form of text fields: labels, services
 * and IP lists are all this. Messages stand next to the field they concern, what was typed stays
 * after a refused save, and a delete is confirmed.
 */
function ObjectTab<T extends { href: string }>(props: {
  noun: string
  items: readonly T[]
  headers: readonly string[]
  cells: (item: T) => ComponentChildren[]
  text: (item: T) => string
  name: (item: T) => string
  fields: readonly Field[]
  read: (item: T) => Record<string, string>
  body: (values: Record<string, string>, editing: boolean) => unknown
  createPath: string
  reload: () => void
}) {
  const ed = useEditor()
  const empty = Object.fromEntries(props.fields.map((f) => [f.key, '']))
  const [values, setValues] = useState<Record<string, string>>(empty)
  const [local, setLocal] = useState<Record<string, string[]>>({})
  const [removing, setRemoving] = useState<T>()
  const view = useListView(props.items, { text: props.text, columns: [] })
  const idOf = (f: Field) => `${props.noun.replace(/\W/g, '-')}-${f.key}`
  const submit = (e: Event) => {
    e.preventDefault()
    const problems = Object.fromEntries(
      props.fields.map((f) => [f.key, f.check?.(values[f.key] ?? '') ?? []]),
    )
    setLocal(problems)
    if (Object.values(problems).some((p) => p.length > 0)) return
    const body = props.body(values, !!ed.editing)
    void ed.run(
      () =>
        ed.editing
          ? call('PUT', `/api/v2${ed.editing}`, body)
          : call('POST', props.createPath, body),
      () => {
        setValues(empty)
        props.reload()
      },
    )
  }
  const plural = `${props.noun}s`
  const title = `${ed.editing ? 'Edit' : 'New'} ${props.noun}`
  return (
    <div>
      {props.items.length > 10 && (
        <SearchBox
          id={`${idOf({ key: 'search' } as Field)}`}
          label={`Search ${plural}`}
          view={view}
          total={props.items.length}
          noun={plural}
        />
      )}
      {props.items.length === 0 ? (
        <p class="empty">No {plural} yet: create one below.</p>
      ) : (
        <table aria-label={plural.charAt(0).toUpperCase() + plural.slice(1)}>
          <TableHead columns={props.headers} action="Actions" />
          <tbody>
            {view.rows.map((item) => (
              <tr key={item.href}>
                {props.cells(item).map((c, k) => (
                  <td key={k}>{c}</td>
                ))}
                <td class="row-actions">
                  <button
                    type="button"
                    aria-label={`Edit ${props.name(item)}`}
                    onClick={() => {
                      ed.setEditing(item.href)
                      ed.setError(undefined)
                      setValues(props.read(item))
                    }}
                  >
                    Edit
                  </button>
                  <button
                    type="button"
                    class="danger"
                    aria-label={`Delete ${props.name(item)}`}
                    onClick={() => setRemoving(item)}
                  >
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <Pager view={view} label={`${props.noun} pages`} />
      {removing && (
        <Confirm
          title={`Delete ${props.noun} ${props.name(removing)}?`}
          confirm={`Delete ${props.noun}`}
          danger
          onClose={() => setRemoving(undefined)}
          onConfirm={async () => {
            await call('DELETE', `/api/v2${removing.href}`)
            props.reload()
          }}
        >
          <p>
            {props.noun === 'label'
              ? 'The label goes at once: it is not provisioned.'
              : 'The deletion waits in the draft until you provision it.'}
          </p>
        </Confirm>
      )}
      <form class="card" onSubmit={submit} aria-label={title}>
        <h2>{title}</h2>
        <Errors
          messages={otherMessages(
            ed.error,
            props.fields.map((f) => f.apiPath),
          )}
        />
        {props.fields.map((f) => {
          const set = (v: string) => setValues({ ...values, [f.key]: v })
          const errors = [...(local[f.key] ?? []), ...messagesFor(ed.error, f.apiPath)]
          return (
            <div key={f.key}>
              {f.multiline ? (
                <>
                  <label for={idOf(f)}>{f.label}</label>
                  <textarea
                    id={idOf(f)}
                    rows={4}
                    value={values[f.key]}
                    aria-invalid={errors.length > 0 ? true : undefined}
                    aria-describedby={errors.length > 0 ? `${idOf(f)}-errors` : undefined}
                    onInput={(e) => set((e.target as HTMLTextAreaElement).value)}
                  />
                  <Errors id={`${idOf(f)}-errors`} messages={errors} />
                </>
              ) : (
                <TextField
                  id={idOf(f)}
                  label={f.label}
                  placeholder={f.placeholder}
                  disabled={f.fixed && !!ed.editing}
                  value={values[f.key] ?? ''}
                  onValue={set}
                  errors={errors}
                />
              )}
            </div>
          )
        })}
        <div class="buttons start">
          <button type="submit">{`${ed.editing ? 'Save' : 'Create'} ${props.noun}`}</button>
          {ed.editing && (
            <button
              type="button"
              onClick={() => {
                ed.setEditing(undefined)
                ed.setError(undefined)
                setValues(empty)
              }}
            >
              Cancel
            </button>
          )}
        </div>
      </form>
    </div>
  )
}

const rangesText = (l: IpList) =>
  l.ip_ranges
    .map((r) => `${r.exclusion ? '!' : ''}${r.from_ip}${r.to_ip ? `-${r.to_ip}` : ''}`)
    .join('\n')
const rangesOf = (text: string) =>
  text
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const exclusion = s.startsWith('!')
      const [from_ip = '', to_ip] = s.replace(/^!/, '').split('-')
      return { from_ip, ...(to_ip && { to_ip }), ...(exclusion && { exclusion }) }
    })

function LabelsTab({ labels, reload }: { labels: Label[]; reload: () => void }) {
  return (
    <ObjectTab
      noun="label"
      items={labels}
      headers={['Key', 'Value']}
      cells={(l) => [l.key, l.value]}
      text={labelText}
      name={labelText}
      fields={[
        { key: 'key', label: 'Key', apiPath: '$.key', fixed: true, placeholder: 'env' },
        { key: 'value', label: 'Value', apiPath: '$.value', placeholder: 'prod' },
      ]}
      read={(l) => ({ key: l.key, value: l.value })}
      body={(v, editing) => (editing ? { value: v.value } : { key: v.key, value: v.value })}
      createPath={`${O}/labels`}
      reload={reload}
    />
  )
}

function ServicesTab({ services, reload }: { services: Service[]; reload: () => void }) {
  return (
    <ObjectTab
      noun="service"
      items={services}
      headers={['Name', 'Ports']}
      cells={(s) => [s.name, portsText(s.service_ports)]}
      text={(s) => `${s.name} ${portsText(s.service_ports)}`}
      name={(s) => s.name}
      fields={[
        { key: 'name', label: 'Name', apiPath: '$.name' },
        {
          key: 'ports',
          label: 'Ports',
          apiPath: '$.service_ports',
          placeholder: 'tcp/443, udp/53, tcp/8000-8010',
          check: (t) => parsePortsChecked(t).problems,
        },
      ]}
      read={(s) => ({ name: s.name, ports: portsText(s.service_ports) })}
      body={(v) => ({ name: v.name, service_ports: parsePortsChecked(v.ports ?? '').ports })}
      createPath={`${DRAFT}/services`}
      reload={reload}
    />
  )
}

function IpListsTab({ lists, reload }: { lists: IpList[]; reload: () => void }) {
  return (
    <ObjectTab
      noun="IP list"
      items={lists}
      headers={['Name', 'Ranges']}
      cells={(l) => [l.name, <pre key="r">{rangesText(l)}</pre>]}
      text={(l) => `${l.name} ${rangesText(l)}`}
      name={(l) => l.name}
      fields={[
        { key: 'name', label: 'Name', apiPath: '$.name' },
        {
          key: 'ranges',
          label: 'Ranges, one per line (CIDR or A-B; ! excludes)',
          apiPath: '$.ip_ranges',
          multiline: true,
        },
      ]}
      read={(l) => ({ name: l.name, ranges: rangesText(l) })}
      body={(v) => ({ name: v.name, ip_ranges: rangesOf(v.ranges ?? '') })}
      createPath={`${DRAFT}/ip_lists`}
      reload={reload}
    />
  )
}

/** Label groups: a name for several labels of one key, usable in scopes and rules. */
function LabelGroupsTab(props: { groups: LabelGroup[]; labels: Label[]; reload: () => void }) {
  const ed = useEditor()
  const [name, setName] = useState('')
  const [key, setKey] = useState('')
  const [members, setMembers] = useState<string[]>([])
  const [removing, setRemoving] = useState<LabelGroup>()
  const keys = [...new Set(props.labels.map((l) => l.key))].sort()
  const labelOf = (href: string) => props.labels.find((l) => l.href === href)
  const submit = (e: Event) => {
    e.preventDefault()
    const body = { name, key, labels: members.map((href) => ({ href })) }
    void ed.run(
      () =>
        ed.editing
          ? call('PUT', `/api/v2${ed.editing}`, body)
          : call('POST', `${DRAFT}/label_groups`, body),
      () => {
        setName('')
        setMembers([])
        props.reload()
      },
    )
  }
  return (
    <div>
      {props.groups.length === 0 ? (
        <p class="empty">No label groups yet: create one below.</p>
      ) : (
        <table aria-label="Label groups">
          <TableHead columns={['Name', 'Key', 'Labels']} action="Actions" />
          <tbody>
            {props.groups.map((g) => (
              <tr key={g.href}>
                <td>{g.name}</td>
                <td>{g.key}</td>
                <td>
                  {(g.labels ?? [])
                    .map((l) => {
                      const x = labelOf(l.href)
                      return x ? x.value : 'deleted label'
                    })
                    .join(', ') || 'none'}
                </td>
                <td class="row-actions">
                  <button
                    type="button"
                    aria-label={`Edit ${g.name}`}
                    onClick={() => {
                      ed.setEditing(g.href)
                      setName(g.name)
                      setKey(g.key)
                      setMembers((g.labels ?? []).map((l) => l.href))
                    }}
                  >
                    Edit
                  </button>
                  <button
                    type="button"
                    class="danger"
                    aria-label={`Delete ${g.name}`}
                    onClick={() => setRemoving(g)}
                  >
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {removing && (
        <Confirm
          title={`Delete label group ${removing.name}?`}
          confirm="Delete label group"
          danger
          onClose={() => setRemoving(undefined)}
          onConfirm={async () => {
            await call('DELETE', `/api/v2${removing.href}`)
            props.reload()
          }}
        >
          <p>The deletion waits in the draft until you provision it.</p>
        </Confirm>
      )}
      <form
        class="card"
        onSubmit={submit}
        aria-label={ed.editing ? 'Edit label group' : 'New label group'}
      >
        <h2>{ed.editing ? 'Edit label group' : 'New label group'}</h2>
        <Errors messages={otherMessages(ed.error, ['$.name', '$.key', '$.labels'])} />
        <TextField
          id="lg-name"
          label="Name"
          value={name}
          onValue={setName}
          errors={messagesFor(ed.error, '$.name')}
        />
        <label for="lg-key">Key</label>
        <select
          id="lg-key"
          value={key}
          disabled={!!ed.editing}
          onChange={(e) => {
            setKey((e.target as HTMLSelectElement).value)
            setMembers([])
          }}
        >
          <option value="">choose a key</option>
          {keys.map((k) => (
            <option key={k}>{k}</option>
          ))}
        </select>
        <Errors messages={messagesFor(ed.error, '$.key')} />
        <MultiPicker
          id="lg-labels"
          label="Labels"
          placeholder={key ? `type a ${key} value` : 'choose a key first'}
          choices={props.labels
            .filter((l) => l.key === key)
            .map((l) => ({ value: l.href, text: l.value, kind: l.key }))}
          value={members.flatMap((h) => {
            const l = labelOf(h)
            return l ? [{ value: h, text: l.value, kind: l.key }] : []
          })}
          onChange={(c) => setMembers(c.map((x) => x.value))}
          errors={messagesFor(ed.error, '$.labels')}
        />
        <div class="buttons start">
          <button type="submit">{ed.editing ? 'Save label group' : 'Create label group'}</button>
          {ed.editing && (
            <button type="button" onClick={() => ed.setEditing(undefined)}>
              Cancel
            </button>
          )}
        </div>
      </form>
    </div>
  )
}
