import { useEffect, useState } from 'preact/hooks'
import type { PolicyNames } from '../actor-choices.js'
import { actorChoices, actorsOf, choicesOf, serviceChoices } from '../actor-choices.js'
import type { Label } from '../api.js'
import { call, messagesFor, nameOfHref, O, otherMessages } from '../api.js'
import { MultiPicker } from '../picker.js'
import type { Choice } from '../picker.js'
import { draftHref } from '../policy-snapshot.js'
import type { Actor, Port } from '../policy-text.js'
import { parsePortsChecked, portsText, servicesText, sideText } from '../policy-text.js'
import { Confirm, Errors, LabelPicker, Labels, TableHead, TextField } from '../ui.js'

const DRAFT = `${O}/sec_policy/draft`

export interface Service {
  href: string
  name: string
  service_ports: Port[]
}
export interface IpList {
  href: string
  name: string
  ip_ranges: { from_ip: string; to_ip?: string; exclusion?: boolean }[]
}
export interface LabelGroup {
  href: string
  name: string
  key: string
  labels?: { href: string }[]
}
/** A rule's entry under services: a port range, or a service by href. */
type RuleService = Port | { href: string }
export interface Rule {
  href: string
  enabled?: boolean
  providers: Actor[]
  consumers: Actor[]
  ingress_services: RuleService[]
  unscoped_consumers?: boolean
  override?: boolean
}
export interface RuleSet {
  href: string
  name: string
  enabled?: boolean
  update_type?: string | null
  scopes: { label?: { href: string }; label_group?: { href: string }; exclusion?: boolean }[][]
  rules: Rule[]
  deny_rules: Rule[]
}
export type Action = 'allow' | 'deny' | 'override_deny'
/** A rule as the table lists it, with the action it takes. */
export interface ListedRule {
  rule: Rule
  action: Action
}
export const ACTION_TEXT = { allow: 'Allow', deny: 'Deny', override_deny: 'Override deny' } as const
const isPort = (s: RuleService): s is Port => 'proto' in s

/** A rule's pending state against the active policy: what provisioning will do to it. */
type RuleStatus = 'added' | 'modified' | 'removed' | null
const STATUS_TEXT = {
  added: 'Addition pending',
  modified: 'Change pending',
  removed: 'Removal pending',
}
const strip = (r: Rule) => JSON.stringify({ ...r, href: draftHref(r.href), update_type: undefined })

const listed = (rs: RuleSet): ListedRule[] => [
  ...rs.deny_rules.map((rule): ListedRule => ({
    rule,
    action: rule.override ? 'override_deny' : 'deny',
  })),
  ...rs.rules.map((rule): ListedRule => ({ rule, action: 'allow' })),
]

export function RuleSetsTab(props: {
  sets: RuleSet[]
  active: RuleSet[]
  names: PolicyNames
  labels: Label[]
  reload: () => void
}) {
  const [editingSet, setEditingSet] = useState<RuleSet | 'new'>()
  const [removing, setRemoving] = useState<RuleSet>()
  const activeOf = (rs: RuleSet) => props.active.find((a) => draftHref(a.href) === rs.href)
  return (
    <div>
      <div class="page-header">
        <p class="hint">
          A rule set applies its rules to the workloads in its scope. Sources are consumers,
          destinations are providers: a rule allows (or denies) its sources to reach its
          destinations on its services.
        </p>
        <button type="button" onClick={() => setEditingSet('new')}>
          Add rule set
        </button>
      </div>
      {editingSet && (
        <RuleSetForm
          set={editingSet === 'new' ? undefined : editingSet}
          labels={props.labels}
          onDone={() => setEditingSet(undefined)}
          reload={props.reload}
        />
      )}
      {props.sets.length === 0 && <p class="empty">No rule sets yet: add one.</p>}
      {props.sets.map((rs) => (
        <RuleSetCard
          key={rs.href}
          rs={rs}
          active={activeOf(rs)}
          names={props.names}
          labels={props.labels}
          onEdit={() => setEditingSet(rs)}
          onDelete={() => setRemoving(rs)}
          reload={props.reload}
        />
      ))}
      {removing && (
        <Confirm
          title={`Delete rule set ${removing.name}?`}
          confirm="Delete rule set"
          danger
          onClose={() => setRemoving(undefined)}
          onConfirm={async () => {
            await call('DELETE', `/api/v2${removing.href}`)
            props.reload()
          }}
        >
          <p>
            Its {removing.rules.length + removing.deny_rules.length} rules go with it when you
            provision the deletion.
          </p>
        </Confirm>
      )}
    </div>
  )
}

const scopeText = (rs: RuleSet) =>
  rs.scopes.length === 0 || rs.scopes.every((s) => s.length === 0) ? 'All workloads' : null

function RuleSetCard(props: {
  rs: RuleSet
  active: RuleSet | undefined
  names: PolicyNames
  labels: Label[]
  onEdit: () => void
  onDelete: () => void
  reload: () => void
}) {
  const { rs, active } = props
  const [form, setForm] = useState<ListedRule | 'new'>()
  const [removing, setRemoving] = useState<ListedRule>()
  const rules = listed(rs)
  const activeRules = active ? listed(active) : []
  const statusOf = (r: Rule): RuleStatus => {
    if (!active) return rs.update_type === 'create' ? 'added' : null
    const before = activeRules.find((a) => draftHref(a.rule.href) === r.href)
    if (!before) return 'added'
    return strip(before.rule) === strip(r) ? null : 'modified'
  }
  const removed = activeRules.filter(
    (a) => !rules.some((r) => r.rule.href === draftHref(a.rule.href)),
  )
  const scope = scopeText(rs)
  // a label group's type, so a side reads as it matches (types ANDed, one type ORed)
  const side = (actors: Actor[]) =>
    sideText(
      actors,
      nameOfHref,
      (href) =>
        props.names.labelGroups.find((g) => g.href === draftHref(href))?.key ??
        props.names.labels.find((l) => l.href === href)?.key,
    )
  return (
    <article class="card rule-set" aria-label={`Rule set ${rs.name}`}>
      <header class="page-header">
        <h2>
          {rs.name}
          {rs.update_type && (
            <span class="tag pending-tag">
              {rs.update_type === 'create'
                ? 'New, not provisioned'
                : rs.update_type === 'delete'
                  ? 'Deletion pending'
                  : 'Changes pending'}
            </span>
          )}
          {rs.enabled === false && <span class="tag">Disabled</span>}
        </h2>
        <div class="actions">
          <button type="button" onClick={() => setForm('new')}>
            Add rule
          </button>
          <button type="button" aria-label={`Edit rule set ${rs.name}`} onClick={props.onEdit}>
            Edit
          </button>
          <button
            type="button"
            class="danger"
            aria-label={`Delete rule set ${rs.name}`}
            onClick={props.onDelete}
          >
            Delete
          </button>
        </div>
      </header>
      <p>
        Scope:{' '}
        {scope ??
          rs.scopes.map((s, i) => (
            <span key={i} class="scope">
              {i > 0 && ' or '}
              <Labels
                labels={s.flatMap((x) =>
                  (x.label
                    ? props.labels.filter((l) => l.href === x.label?.href)
                    : x.label_group
                      ? [
                          {
                            href: x.label_group.href,
                            key: 'group',
                            value: nameOfHref(x.label_group.href) ?? 'deleted group',
                          },
                        ]
                      : []
                  ).map((l) => (x.exclusion ? { ...l, value: `not ${l.value}` } : l)),
                )}
              />
            </span>
          ))}
      </p>
      {rules.length === 0 && removed.length === 0 ? (
        <p class="empty">No rules yet: add one. Without rules this rule set allows nothing.</p>
      ) : (
        <table aria-label={`Rules of ${rs.name}`}>
          <TableHead
            columns={['#', 'Action', 'Sources', 'Destinations', 'Services', 'Status']}
            action="Actions"
          />
          <tbody>
            {rules.map((lr, i) => {
              const r = lr.rule
              const status = statusOf(r)
              return (
                <tr key={r.href} class={`rule-${lr.action.replace('_', '-')}`}>
                  <td>{i + 1}</td>
                  <td>{ACTION_TEXT[lr.action]}</td>
                  <td>
                    {side(r.consumers)}
                    {r.unscoped_consumers && <span class="why">from outside the scope too</span>}
                  </td>
                  <td>{side(r.providers)}</td>
                  <td>{servicesText(r.ingress_services, nameOfHref)}</td>
                  <td>
                    {status && <span class="tag pending-tag">{STATUS_TEXT[status]}</span>}
                    {r.enabled === false && <span class="tag">Disabled</span>}
                  </td>
                  <td class="row-actions">
                    <button
                      type="button"
                      aria-label={`Edit rule ${i + 1}`}
                      onClick={() => setForm(lr)}
                    >
                      Edit rule
                    </button>
                    <button
                      type="button"
                      class="danger"
                      aria-label={`Delete rule ${i + 1}`}
                      onClick={() => setRemoving(lr)}
                    >
                      Delete rule
                    </button>
                  </td>
                </tr>
              )
            })}
            {removed.map((lr) => (
              <tr key={lr.rule.href} class="removed">
                <td>—</td>
                <td>{ACTION_TEXT[lr.action]}</td>
                <td>{side(lr.rule.consumers)}</td>
                <td>{side(lr.rule.providers)}</td>
                <td>{servicesText(lr.rule.ingress_services, nameOfHref)}</td>
                <td>
                  <span class="tag pending-tag">{STATUS_TEXT.removed}</span>
                </td>
                <td />
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {form && (
        <RuleForm
          rs={rs}
          names={props.names}
          editing={form === 'new' ? undefined : form}
          onDone={() => setForm(undefined)}
          reload={props.reload}
        />
      )}
      {removing && (
        <Confirm
          title={`Delete this rule of ${rs.name}?`}
          confirm="Delete rule"
          danger
          onClose={() => setRemoving(undefined)}
          onConfirm={async () => {
            await call('DELETE', `/api/v2${removing.rule.href}`)
            props.reload()
          }}
        >
          <p>
            {ACTION_TEXT[removing.action]} {side(removing.rule.consumers)} to{' '}
            {side(removing.rule.providers)} on{' '}
            {servicesText(removing.rule.ingress_services, nameOfHref)}. The removal waits in the
            draft until you provision it.
          </p>
        </Confirm>
      )}
    </article>
  )
}

function RuleSetForm(props: {
  set: RuleSet | undefined
  labels: Label[]
  onDone: () => void
  reload: () => void
}) {
  const rs = props.set
  const [name, setName] = useState(rs?.name ?? '')
  const [scope, setScope] = useState<string[]>(
    (rs?.scopes[0] ?? []).flatMap((s) => (s.label ? [s.label.href] : [])),
  )
  // The picker edits one scope of included labels; any other scope is left as it is.
  const pickable =
    !rs || (rs.scopes.length <= 1 && (rs.scopes[0] ?? []).every((s) => s.label && !s.exclusion))
  const [error, setError] = useState<unknown>()
  const submit = async (e: Event) => {
    e.preventDefault()
    setError(undefined)
    const body = {
      name,
      ...(pickable && {
        scopes: scope.length === 0 ? [] : [scope.map((href) => ({ label: { href } }))],
      }),
    }
    try {
      if (rs) await call('PUT', `/api/v2${rs.href}`, body)
      else await call('POST', `${DRAFT}/rule_sets`, body)
      props.onDone()
      props.reload()
    } catch (err) {
      setError(err)
    }
  }
  const title = rs ? `Edit rule set ${rs.name}` : 'New rule set'
  return (
    <form class="card" onSubmit={(e) => void submit(e)} aria-label={title}>
      <h2>{title}</h2>
      <Errors messages={otherMessages(error, ['$.name', '$.scopes'])} />
      <TextField
        id="rs-name"
        label="Name"
        value={name}
        onValue={setName}
        errors={messagesFor(error, '$.name')}
      />
      <fieldset>
        <legend>Scope</legend>
        <p class="hint">
          The workloads with all of these labels get this rule set&apos;s rules; none chosen means
          all workloads.
        </p>
        {pickable ? (
          <LabelPicker
            labels={props.labels}
            value={scope}
            onChange={setScope}
            idPrefix="rs-scope"
          />
        ) : (
          <p class="hint">
            This rule set&apos;s scope has label groups, exclusions or several scopes; it is kept as
            it is (change it through the API).
          </p>
        )}
        <Errors messages={messagesFor(error, '$.scopes')} />
      </fieldset>
      <div class="buttons start">
        <button type="submit">{rs ? 'Save rule set' : 'Create rule set'}</button>
        <button type="button" onClick={props.onDone}>
          Cancel
        </button>
      </div>
    </form>
  )
}

/** What the rule form starts with when a rule is written from elsewhere (the traffic map). */
export interface RuleDraft {
  action: Action
  consumers: Actor[]
  providers: Actor[]
  services: RuleService[]
}

/**
 * Adds a rule to a rule set, or edits one: sources and destinations are any of labels, label
 * groups, IP lists, workloads or all workloads; services are named services and ports (neither:
 * all services). Whether a rule allows or denies is fixed once it exists (they live in different
 * lists): deny and override deny may be swapped.
 */
export function RuleForm(props: {
  rs: RuleSet
  names: PolicyNames
  editing?: ListedRule
  initial?: RuleDraft
  /** Cancelled, or saved when there is no `onSaved`. */
  onDone: () => void
  onSaved?: () => void
  reload: () => void
}) {
  const { rs, editing } = props
  const rule = editing?.rule
  const start: RuleDraft = editing
    ? {
        action: editing.action,
        consumers: editing.rule.consumers,
        providers: editing.rule.providers,
        services: editing.rule.ingress_services,
      }
    : (props.initial ?? { action: 'allow', consumers: [], providers: [], services: [] })
  const [action, setAction] = useState<Action>(start.action)
  const [consumers, setConsumers] = useState<Choice[]>(choicesOf(start.consumers, nameOfHref))
  const [providers, setProviders] = useState<Choice[]>(choicesOf(start.providers, nameOfHref))
  const [named, setNamed] = useState<Choice[]>(
    start.services.flatMap((s) =>
      'href' in s ? [{ value: s.href, text: nameOfHref(s.href) ?? s.href, kind: 'service' }] : [],
    ),
  )
  const [ports, setPorts] = useState(portsText(start.services.filter(isPort)))
  const [unscoped, setUnscoped] = useState(rule?.unscoped_consumers ?? false)
  const [error, setError] = useState<unknown>()
  const [local, setLocal] = useState<Record<string, string[]>>({})
  const id = rs.href.split('/').pop() ?? ''
  useEffect(() => {
    setError(undefined)
  }, [editing])
  const submit = async (e: Event) => {
    e.preventDefault()
    const parsed = parsePortsChecked(ports)
    const problems = {
      consumers: consumers.length === 0 ? ['Choose at least one source.'] : [],
      providers: providers.length === 0 ? ['Choose at least one destination.'] : [],
      ports: parsed.problems,
    }
    setLocal(problems)
    if (Object.values(problems).some((p) => p.length > 0)) return
    const body = {
      consumers: actorsOf(consumers),
      providers: actorsOf(providers),
      ingress_services: [...named.map((c) => ({ href: c.value })), ...parsed.ports],
      unscoped_consumers: unscoped,
      ...(action !== 'allow' && { override: action === 'override_deny' }),
    }
    setError(undefined)
    try {
      if (rule) await call('PUT', `/api/v2${rule.href}`, body)
      else
        await call(
          'POST',
          `/api/v2${rs.href}/${action === 'allow' ? 'sec_rules' : 'deny_rules'}`,
          body,
        )
      props.reload()
      ;(props.onSaved ?? props.onDone)()
    } catch (err) {
      setError(err)
    }
  }
  const fixed = (a: Action) => !!editing && (editing.action === 'allow') !== (a === 'allow')
  const choices = actorChoices(props.names)
  const scoped = rs.scopes.some((s) => s.length > 0)
  const claimed = ['$.consumers', '$.providers', '$.ingress_services', '$.unscoped_consumers']
  return (
    <form
      class="rule-form"
      onSubmit={(e) => void submit(e)}
      aria-label={`${rule ? 'Edit rule' : 'New rule'} in ${rs.name}`}
    >
      <h3>{rule ? 'Edit rule' : 'New rule'}</h3>
      <Errors messages={otherMessages(error, claimed)} />
      <div class="rule-grid">
        <div>
          <label for={`rule-action-${id}`}>Action</label>
          <select
            id={`rule-action-${id}`}
            value={action}
            onChange={(e) => setAction((e.target as HTMLSelectElement).value as Action)}
          >
            {(['allow', 'deny', 'override_deny'] as const).map((a) => (
              <option key={a} value={a} disabled={fixed(a)}>
                {ACTION_TEXT[a]}
              </option>
            ))}
          </select>
        </div>
        <MultiPicker
          id={`rule-c-${id}`}
          label="Sources"
          placeholder="label, group, IP list, workload"
          choices={choices}
          value={consumers}
          onChange={(c) => {
            setConsumers(c)
            setLocal({ ...local, consumers: [] })
          }}
          errors={[...(local.consumers ?? []), ...messagesFor(error, '$.consumers')]}
        />
        <MultiPicker
          id={`rule-p-${id}`}
          label="Destinations"
          placeholder="label, group, IP list, workload"
          choices={choices}
          value={providers}
          onChange={(c) => {
            setProviders(c)
            setLocal({ ...local, providers: [] })
          }}
          errors={[...(local.providers ?? []), ...messagesFor(error, '$.providers')]}
        />
        <div>
          <MultiPicker
            id={`rule-s-${id}`}
            label="Services"
            placeholder="HTTPS, PostgreSQL…"
            choices={serviceChoices(props.names)}
            value={named}
            onChange={setNamed}
          />
          <TextField
            id={`rule-ports-${id}`}
            label="Ports"
            placeholder="tcp/443, udp/53"
            value={ports}
            onValue={setPorts}
            errors={[...(local.ports ?? []), ...messagesFor(error, '$.ingress_services')]}
          />
        </div>
      </div>
      <p class="hint">A side matches any of what it names. No service and no port: all services.</p>
      {scoped && (
        <label class="radio">
          <input
            type="checkbox"
            checked={unscoped}
            onChange={(e) => setUnscoped((e.target as HTMLInputElement).checked)}
          />
          Sources may be outside the scope (extra-scope rule)
        </label>
      )}
      <div class="buttons start">
        <button type="submit">{rule ? 'Save rule' : 'Add rule'}</button>
        <button type="button" onClick={props.onDone}>
          Cancel
        </button>
      </div>
    </form>
  )
}
