import type { ComponentChildren } from 'preact'
import { useEffect, useRef } from 'preact/hooks'
import type { Label } from './api.js'
import { labelText } from './api.js'

/** The messages of a failed request, shown where the user looks: next to the field or on top. */
export function Errors({ messages, id }: { messages: readonly string[]; id?: string }) {
  if (messages.length === 0) return null
  return (
    <ul class="errors" role="alert" id={id}>
      {messages.map((m) => (
        <li key={m}>{m}</li>
      ))}
    </ul>
  )
}

export function Labels({ labels }: { labels: readonly Label[] }) {
  return (
    <span class="labels">
      {labels.map((l) => (
        <span class={`label key-${l.key}`} key={l.href}>
          {labelText(l)}
        </span>
      ))}
    </span>
  )
}

/** A modal dialog: focus moves into it, Escape closes it, focus returns where it was. */
export function Dialog(props: { title: string; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDivElement>(null)
  useEffect(() => {
    const before = document.activeElement as HTMLElement | null
    ref.current?.querySelector<HTMLElement>('select, input, textarea, button')?.focus()
    const key = (e: KeyboardEvent) => {
      if (e.key === 'Escape') props.onClose()
    }
    document.addEventListener('keydown', key)
    return () => {
      document.removeEventListener('keydown', key)
      before?.focus()
    }
  }, [])
  return (
    <div class="backdrop">
      <div class="dialog" role="dialog" aria-modal="true" aria-labelledby="dialog-title" ref={ref}>
        <h2 id="dialog-title">{props.title}</h2>
        {props.children}
      </div>
    </div>
  )
}

/**
 * One select per label key: a scope holds at most one label per key, so the picker cannot
 * express anything else.
 */
export function LabelPicker(props: {
  labels: readonly Label[]
  value: readonly string[]
  onChange: (hrefs: string[]) => void
  idPrefix: string
}) {
  const keys = [...new Set(props.labels.map((l) => l.key))].sort()
  const chosen = (key: string) =>
    props.labels.find((l) => l.key === key && props.value.includes(l.href))?.href ?? ''
  return (
    <div class="label-picker">
      {keys.length === 0 && <p class="hint">No labels yet: create them under Policy.</p>}
      {keys.map((key) => (
        <div class="pick" key={key}>
          <label for={`${props.idPrefix}-${key}`}>{key}</label>
          <select
            id={`${props.idPrefix}-${key}`}
            value={chosen(key)}
            onChange={(e) => {
              const href = (e.target as HTMLSelectElement).value
              const others = props.value.filter(
                (h) => props.labels.find((l) => l.href === h)?.key !== key,
              )
              props.onChange(href ? [...others, href] : others)
            }}
          >
            <option value="">any {key}</option>
            {props.labels
              .filter((l) => l.key === key)
              .map((l) => (
                <option key={l.href} value={l.href}>
                  {l.value}
                </option>
              ))}
          </select>
        </div>
      ))}
    </div>
  )
}

export function Page(props: {
  title: string
  children: ComponentChildren
  actions?: ComponentChildren
}) {
  return (
    <section class="page" aria-labelledby="page-title">
      <header class="page-header">
        <h1 id="page-title">{props.title}</h1>
        <div class="actions">{props.actions}</div>
      </header>
      {props.children}
    </section>
  )
}

export const when = (iso: string | null | undefined) =>
  iso ? new Date(iso).toLocaleString(undefined, { hour12: false }) : '—'

/** A labelled text input: the one way the console asks for a line of text. */
export function TextField(props: {
  id: string
  label: string
  value: string
  onValue: (value: string) => void
  type?: string
  placeholder?: string
  list?: string
  autoComplete?: string
  describedBy?: string
  disabled?: boolean
}) {
  return (
    <>
      <label for={props.id}>{props.label}</label>
      <input
        id={props.id}
        type={props.type ?? 'text'}
        placeholder={props.placeholder}
        list={props.list}
        autoComplete={props.autoComplete}
        aria-describedby={props.describedBy}
        disabled={props.disabled}
        value={props.value}
        onInput={(e) => props.onValue((e.target as HTMLInputElement).value)}
      />
    </>
  )
}

/** A table's header row: a column header for each name, and an unseen one over row actions. */
export function TableHead(props: { columns: readonly string[]; action?: string }) {
  return (
    <thead>
      <tr>
        {props.columns.map((c) => (
          <th scope="col" key={c}>
            {c}
          </th>
        ))}
        {props.action && (
          <th scope="col">
            <span class="sr-only">{props.action}</span>
          </th>
        )}
      </tr>
    </thead>
  )
}

const WITHIN = [
  ['1', 'last hour'],
  ['24', 'last day'],
  ['168', 'last week'],
] as const

/** How far back to look, in hours ('' for any time, when offered). */
export function TimeSelect(props: {
  id: string
  value: string
  onValue: (hours: string) => void
  anyTime?: boolean
}) {
  return (
    <>
      <label for={props.id}>Time</label>
      <select
        id={props.id}
        value={props.value}
        onChange={(e) => props.onValue((e.target as HTMLSelectElement).value)}
      >
        {props.anyTime && <option value="">any time</option>}
        {WITHIN.map(([v, t]) => (
          <option key={v} value={v}>
            {t}
          </option>
        ))}
      </select>
    </>
  )
}
