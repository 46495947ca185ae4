import type { ComponentChildren } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import type { Label } from '../api.js'
import { call, labelText, messagesFor, O, otherMessages } from '../api.js'
import { useLive } from '../hooks.js'
import { Errors, LabelPicker, Labels, Page, TableHead, TextField } from '../ui.js'

const DRAFT = `${O}/sec_policy/draft`
const PROTOS: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, icmpv6: 58, any: -1 }
const PROTO_NAMES = Object.fromEntries(Object.entries(PROTOS).map(([k, v]) => [v, k]))

interface Port {
  proto: number
  port?: number
  to_port?: number
}
/** `tcp/443, udp/53, tcp/8000-8010, icmp` (or protocol numbers) to service ports. */
export function parsePorts(text: string): Port[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const [p = '', range] = s.split('/')
      const proto = PROTOS[p.toLowerCase()] ?? Number(p)
      const [from, to] = (range ?? '').split('-').map((x) => (x === '' ? undefined : Number(x)))
      return {
        proto,
        ...(from !== undefined && { port: from }),
        ...(to !== undefined && { to_port: to }),
      }
    })
}
const portsText = (ports: readonly Port[]) =>
  ports
    .map(
      (p) =>
        `${PROTO_NAMES[p.proto] ?? p.proto}${p.port !== undefined ? `/${p.port}${p.to_port !== undefined ? `-${p.to_port}` : ''}` : ''}`,
    )
    .join(', ')

interface Service {
  href: string
  name: string
  service_ports: Port[]
}
interface IpList {
  href: string
  name: string
  ip_ranges: { from_ip: string; to_ip?: string; exclusion?: boolean }[]
}
interface Actor {
  label?: { href: string }
  actors?: string
  ip_list?: { href: string }
}
/** A rule's entry under services: a port range, or a service by href. */
type RuleService = Port | { href: string }
interface Rule {
  href: string
  providers: Actor[]
  consumers: Actor[]
  ingress_services: RuleService[]
  override?: boolean
}
/** A rule as the table lists it, with the action it takes. */
interface ListedRule {
  rule: Rule
  action: 'allow' | 'deny' | 'override_deny'
}
const ACTION_TEXT = { allow: 'allow', deny: 'deny', override_deny: 'override deny' } as const
const isPort = (s: RuleService): s is Port => 'proto' in s
interface RuleSet {
  href: string
  name: string
  scopes: { label?: { href: string } }[][]
  rules: Rule[]
  deny_rules: Rule[]
}

const TABS = ['Labels', 'Services', 'IP lists', 'Rule sets'] as const

export function PolicyPage() {
  const [tab, setTab] = useState<(typeof TABS)[number]>('Labels')
  const live = useLive(async () => {
    const [labels, services, ipLists, ruleSets] = await Promise.all([
      call<Label[]>('GET', `${O}/labels?max_results=10000`),
      call<Service[]>('GET', `${DRAFT}/services`),
      call<IpList[]>('GET', `${DRAFT}/ip_lists`),
      call<RuleSet[]>('GET', `${DRAFT}/rule_sets`),
    ])
    return { labels, services, ipLists, ruleSets }
  }, 5000)
  const d = live.data
  const reload = () => void live.reload()
  return (
    <Page title="Policy">
      <div role="tablist" aria-label="Policy objects" class="tabs">
        {TABS.map((t) => (
          <button
            key={t}
            type="button"
            role="tab"
            aria-selected={tab === t}
            onClick={() => setTab(t)}
          >
            {t}
          </button>
        ))}
      </div>
      <p class="hint">
        Changes to services, IP lists and rule sets go to the draft; provision them to enforce.
      </p>
      <Errors messages={otherMessages(live.error, [])} />
      {d && tab === 'Labels' && <LabelsTab labels={d.labels} reload={reload} />}
      {d && tab === 'Services' && <ServicesTab services={d.services} reload={reload} />}
      {d && tab === 'IP lists' && <IpListsTab lists={d.ipLists} reload={reload} />}
      {d && tab === 'Rule sets' && (
        <RuleSetsTab
          sets={d.ruleSets}
          labels={d.labels}
          services={d.services}
          lists={d.ipLists}
          reload={reload}
        />
      )}
    </Page>
  )
}

/** A create-or-edit form's state: the href being edited (or none), the error of the last save. */
function useEditor() {
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
}

/**
 * The list of one kind of object with a create-or-edit form of text fields: labels, services
 * and IP lists are all this. The API's messages stand next to the field they concern, and what
 * was typed stays after a refused save.
 */
function ObjectTab<T extends { href: string }>(props: {
  noun: string
  items: readonly T[]
  headers: readonly string[]
  cells: (item: T) => ComponentChildren[]
  fields: readonly Field[]
  read: (item: T) => Record<string, string>
  body: (values: Record<string, string>, editing: boolean) => unknown
  createPath: string
  reload: () => void
}) {
  const ed = useEditor()
  const empty = Object.fromEntries(props.fields.map((f) => [f.key, '']))
  const [values, setValues] = useState<Record<string, string>>(empty)
  const idOf = (f: Field) => `${props.noun.replace(/\W/g, '-')}-${f.key}`
  const submit = (e: Event) => {
    e.preventDefault()
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
  const title = `${ed.editing ? 'Edit' : 'New'} ${props.noun}`
  return (
    <div>
      <table aria-label={`${props.noun}s`}>
        <TableHead columns={props.headers} action="Actions" />
        <tbody>
          {props.items.map((item) => (
            <tr key={item.href}>
              {props.cells(item).map((c, k) => (
                <td key={k}>{c}</td>
              ))}
              <td class="row-actions">
                <button
                  type="button"
                  onClick={() => {
                    ed.setEditing(item.href)
                    setValues(props.read(item))
                  }}
                >
                  Edit
                </button>
                <button
                  type="button"
                  class="danger"
                  onClick={() =>
                    void ed.run(() => call('DELETE', `/api/v2${item.href}`), props.reload)
                  }
                >
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
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
          return (
            <div key={f.key}>
              {f.multiline ? (
                <>
                  <label for={idOf(f)}>{f.label}</label>
                  <textarea
                    id={idOf(f)}
                    rows={4}
                    value={values[f.key]}
                    onInput={(e) => set((e.target as HTMLTextAreaElement).value)}
                  />
                </>
              ) : (
                <TextField
                  id={idOf(f)}
                  label={f.label}
                  placeholder={f.placeholder}
                  disabled={f.fixed && !!ed.editing}
                  value={values[f.key] ?? ''}
                  onValue={set}
                />
              )}
              <Errors messages={messagesFor(ed.error, f.apiPath)} />
            </div>
          )
        })}
        <button type="submit">{`${ed.editing ? 'Save' : 'Create'} ${props.noun}`}</button>
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
      fields={[
        { key: 'key', label: 'Key', apiPath: '$.key', fixed: true },
        { key: 'value', label: 'Value', apiPath: '$.value' },
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
      fields={[
        { key: 'name', label: 'Name', apiPath: '$.name' },
        {
          key: 'ports',
          label: 'Ports',
          apiPath: '$.service_ports',
          placeholder: 'tcp/443, udp/53, tcp/8000-8010',
        },
      ]}
      read={(s) => ({ name: s.name, ports: portsText(s.service_ports) })}
      body={(v) => ({ name: v.name, service_ports: parsePorts(v.ports ?? '') })}
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

const actorText = (a: Actor, labels: Label[], lists: IpList[]) => {
  if (a.actors === 'ams') return 'all workloads'
  if (a.label) {
    const l = labels.find((x) => x.href === a.label?.href)
    return l ? labelText(l) : a.label.href
  }
  if (a.ip_list) return lists.find((x) => x.href === a.ip_list?.href)?.name ?? a.ip_list.href
  return '?'
}

function RuleSetsTab(props: {
  sets: RuleSet[]
  labels: Label[]
  services: Service[]
  lists: IpList[]
  reload: () => void
}) {
  const ed = useEditor()
  const [name, setName] = useState('')
  const [scope, setScope] = useState<string[]>([])
  const [editingRule, setEditingRule] = useState<ListedRule>()
  const submit = (e: Event) => {
    e.preventDefault()
    const body = { name, scopes: [scope.map((href) => ({ label: { href } }))] }
    void ed.run(
      () =>
        ed.editing
          ? call('PUT', `/api/v2${ed.editing}`, body)
          : call('POST', `${DRAFT}/rule_sets`, body),
      () => {
        setName('')
        setScope([])
        props.reload()
      },
    )
  }
  return (
    <div>
      {props.sets.map((rs) => (
        <article class="card" key={rs.href} aria-label={`Rule set ${rs.name}`}>
          <header class="page-header">
            <h2>{rs.name}</h2>
            <div class="actions">
              <button
                type="button"
                onClick={() => {
                  ed.setEditing(rs.href)
                  setName(rs.name)
                  setScope((rs.scopes[0] ?? []).flatMap((s) => (s.label ? [s.label.href] : [])))
                }}
              >
                Edit
              </button>
              <button
                type="button"
                class="danger"
                onClick={() => void ed.run(() => call('DELETE', `/api/v2${rs.href}`), props.reload)}
              >
                Delete
              </button>
            </div>
          </header>
          <p>
            Scope:{' '}
            {rs.scopes.every((s) => s.length === 0) ? (
              'all workloads'
            ) : (
              <Labels
                labels={rs.scopes
                  .flat()
                  .flatMap((s) => props.labels.filter((l) => l.href === s.label?.href))}
              />
            )}
          </p>
          <table aria-label={`Rules of ${rs.name}`}>
            <TableHead
              columns={['Action', 'Sources (consumers)', 'Destinations (providers)', 'Services']}
              action="Actions"
            />
            <tbody>
              {[
                ...rs.deny_rules.map((rule): ListedRule => ({
                  rule,
                  action: rule.override ? 'override_deny' : 'deny',
                })),
                ...rs.rules.map((rule): ListedRule => ({ rule, action: 'allow' })),
              ].map(({ rule: r, action }) => (
                <tr key={r.href} class={`rule-${action.replace('_', '-')}`}>
                  <td>{ACTION_TEXT[action]}</td>
                  <td>
                    {r.consumers.map((a) => actorText(a, props.labels, props.lists)).join(', ')}
                  </td>
                  <td>
                    {r.providers.map((a) => actorText(a, props.labels, props.lists)).join(', ')}
                  </td>
                  <td>{portsText(r.ingress_services.filter(isPort))}</td>
                  <td>
                    <button type="button" onClick={() => setEditingRule({ rule: r, action })}>
                      Edit rule
                    </button>
                    <button
                      type="button"
                      class="danger"
                      onClick={() =>
                        void ed.run(() => call('DELETE', `/api/v2${r.href}`), props.reload)
                      }
                    >
                      Delete rule
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <RuleForm
            rs={rs}
            labels={props.labels}
            editing={editingRule?.rule.href.startsWith(`${rs.href}/`) ? editingRule : undefined}
            onDone={() => setEditingRule(undefined)}
            reload={props.reload}
          />
        </article>
      ))}
      <form class="card" onSubmit={submit}>
        <h2>{ed.editing ? 'Edit rule set' : 'New rule set'}</h2>
        <Errors messages={otherMessages(ed.error, ['$.name', '$.scopes'])} />
        <TextField id="rs-name" label="Name" value={name} onValue={setName} />
        <Errors messages={messagesFor(ed.error, '$.name')} />
        <fieldset>
          <legend>Scope</legend>
          <LabelPicker
            labels={props.labels}
            value={scope}
            onChange={setScope}
            idPrefix="rs-scope"
          />
          <Errors messages={messagesFor(ed.error, '$.scopes')} />
        </fieldset>
        <button type="submit">{ed.editing ? 'Save rule set' : 'Create rule set'}</button>
      </form>
    </div>
  )
}

/**
 * Adds a rule to a rule set, or edits the one chosen in its table. The form shows labels and
 * port ranges; a rule's other sources, destinations and services (IP lists, workloads, named
 * services) are kept as they are. Whether a rule allows or denies is fixed once it exists (they
 * live in different lists): deny and override deny may be swapped.
 */
function RuleForm(props: {
  rs: RuleSet
  labels: Label[]
  editing: ListedRule | undefined
  onDone: () => void
  reload: () => void
}) {
  const { rs, labels, editing } = props
  const ed = useEditor()
  const [action, setAction] = useState<ListedRule['action']>('allow')
  const [consumers, setConsumers] = useState<string[]>([])
  const [providers, setProviders] = useState<string[]>([])
  const [ports, setPorts] = useState('tcp/443')
  const id = rs.href.split('/').pop() ?? ''
  const rule = editing?.rule
  useEffect(() => {
    ed.setError(undefined)
    if (!editing) return
    const labelsOf = (actors: Actor[]) => actors.flatMap((a) => (a.label ? [a.label.href] : []))
    setAction(editing.action)
    setConsumers(labelsOf(editing.rule.consumers))
    setProviders(labelsOf(editing.rule.providers))
    setPorts(portsText(editing.rule.ingress_services.filter(isPort)))
  }, [editing])
  const kept = (actors: Actor[] | undefined) =>
    (actors ?? []).filter((a) => !a.label && a.actors !== 'ams')
  const actors = (hrefs: string[], others: Actor[]) =>
    hrefs.length === 0 && others.length === 0
      ? [{ actors: 'ams' }]
      : [...hrefs.map((href) => ({ label: { href } })), ...others]
  const clear = () => {
    setAction('allow')
    setConsumers([])
    setProviders([])
    setPorts('tcp/443')
    props.onDone()
  }
  const submit = (e: Event) => {
    e.preventDefault()
    const body = {
      consumers: actors(consumers, kept(rule?.consumers)),
      providers: actors(providers, kept(rule?.providers)),
      ingress_services: [
        ...parsePorts(ports),
        ...(rule?.ingress_services ?? []).filter((s) => !isPort(s)),
      ],
      ...(action !== 'allow' && { override: action === 'override_deny' }),
    }
    void ed.run(
      () =>
        rule
          ? call('PUT', `/api/v2${rule.href}`, body)
          : call(
              'POST',
              `/api/v2${rs.href}/${action === 'allow' ? 'sec_rules' : 'deny_rules'}`,
              body,
            ),
      () => {
        if (rule) clear()
        props.reload()
      },
    )
  }
  const fixed = (a: ListedRule['action']) =>
    !!editing && (editing.action === 'allow') !== (a === 'allow')
  const others = [...kept(rule?.consumers), ...kept(rule?.providers)].length
  return (
    <form
      class="rule-form"
      onSubmit={submit}
      aria-label={`${rule ? 'Edit rule' : 'New rule'} in ${rs.name}`}
    >
      <Errors messages={otherMessages(ed.error, [])} />
      <label for={`rule-action-${id}`}>Action</label>
      <select
        id={`rule-action-${id}`}
        value={action}
        onChange={(e) => setAction((e.target as HTMLSelectElement).value as ListedRule['action'])}
      >
        {(['allow', 'deny', 'override_deny'] as const).map((a) => (
          <option key={a} value={a} disabled={fixed(a)}>
            {ACTION_TEXT[a]}
          </option>
        ))}
      </select>
      <fieldset>
        <legend>Sources (consumers; none: all workloads)</legend>
        <LabelPicker
          labels={labels}
          value={consumers}
          onChange={setConsumers}
          idPrefix={`rule-c-${id}`}
        />
      </fieldset>
      <fieldset>
        <legend>Destinations (providers; none: all workloads)</legend>
        <LabelPicker
          labels={labels}
          value={providers}
          onChange={setProviders}
          idPrefix={`rule-p-${id}`}
        />
      </fieldset>
      <TextField id={`rule-ports-${id}`} label="Services" value={ports} onValue={setPorts} />
      {others > 0 && (
        <p class="hint">{`${others} source or destination that is not a label is kept as it is.`}</p>
      )}
      <button type="submit">{rule ? 'Save rule' : 'Add rule'}</button>
      {rule && (
        <button type="button" onClick={clear}>
          Cancel
        </button>
      )}
    </form>
  )
}
