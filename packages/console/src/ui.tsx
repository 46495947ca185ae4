import type { ComponentChildren } from 'preact'
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks'
import type { Label } from './api.js'
import { labelText, otherMessages } from './api.js'

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

const FOCUSABLE =
  'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])'

/**
 * A modal dialog: focus moves into it and stays there (Tab and Shift+Tab cycle), Escape closes
 * it, focus returns where it was (or to the page, when that is gone).
 */
export function Dialog(props: {
  title: string
  onClose: () => void
  children: ComponentChildren
  wide?: boolean
}) {
  const ref = useRef<HTMLDivElement>(null)
  const close = useRef(props.onClose)
  close.current = props.onClose
  // Before the browser paints: a key pressed as soon as the dialog shows must reach it.
  useLayoutEffect(() => {
    const before = document.activeElement as HTMLElement | null
    const box = ref.current
    const first = box?.querySelector<HTMLElement>(
      '[data-autofocus], select, input, textarea, button',
    )
    first?.focus()
    const key = (e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        e.preventDefault()
        close.current()
        return
      }
      if (e.key !== 'Tab' || !box) return
      const all = [...box.querySelectorAll<HTMLElement>(FOCUSABLE)].filter(
        (el) => el.offsetParent !== null,
      )
      const [a, z] = [all[0], all[all.length - 1]]
      if (!a || !z) return
      if (e.shiftKey && (document.activeElement === a || !box.contains(document.activeElement))) {
        e.preventDefault()
        z.focus()
      } else if (
        !e.shiftKey &&
        (document.activeElement === z || !box.contains(document.activeElement))
      ) {
        e.preventDefault()
        a.focus()
      }
    }
    document.addEventListener('keydown', key)
    return () => {
      document.removeEventListener('keydown', key)
      // What opened it may be gone (the thing it acted on was removed): then the page's content.
      if (before?.isConnected) before.focus()
      else document.getElementById('main')?.focus()
    }
  }, [])
  return (
    <div class="backdrop">
      <div
        class={props.wide ? 'dialog wide' : 'dialog'}
        role="dialog"
        aria-modal="true"
        aria-labelledby="dialog-title"
        ref={ref}
      >
        <h2 id="dialog-title">{props.title}</h2>
        {props.children}
      </div>
    </div>
  )
}

/**
 * Asks before a change that alters enforcement or removes something: says what will happen,
 * and acts only on the explicit button. A refused change keeps the dialog open with the reason.
 */
export function Confirm(props: {
  title: string
  confirm: string
  onConfirm: () => Promise<unknown>
  onClose: () => void
  children: ComponentChildren
  danger?: boolean
  /** Not yet: what the confirmation would do is still being worked out. */
  disabled?: boolean
}) {
  const [error, setError] = useState<unknown>()
  const [busy, setBusy] = useState(false)
  const go = async () => {
    setBusy(true)
    setError(undefined)
    try {
      await props.onConfirm()
      props.onClose()
    } catch (e) {
      setError(e)
    } finally {
      setBusy(false)
    }
  }
  return (
    <Dialog title={props.title} onClose={props.onClose}>
      <div class="confirm-body">{props.children}</div>
      <Errors messages={otherMessages(error, [])} />
      <div class="buttons">
        <button type="button" onClick={props.onClose}>
          Cancel
        </button>
        <button
          type="button"
          class={props.danger ? 'danger solid' : 'primary'}
          disabled={busy || props.disabled}
          onClick={() => void go()}
        >
          {props.confirm}
        </button>
      </div>
    </Dialog>
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
  /** Where this page sits: links back up (an empty href: a place that is not a page). */
  trail?: readonly (readonly [string, string])[]
}) {
  useEffect(() => {
    document.title = `${props.title} · Palisade`
  }, [props.title])
  return (
    <section class="page" aria-labelledby="page-title">
      {props.trail && (
        <nav aria-label="Breadcrumb" class="trail">
          {props.trail.map(([href, text]) => (
            <span key={text}>{href ? <a href={href}>{text}</a> : text} › </span>
          ))}
        </nav>
      )}
      <header class="page-header">
        <h1 id="page-title">{props.title}</h1>
        <div class="actions">{props.actions}</div>
      </header>
      {props.children}
    </section>
  )
}

/** What a list shows while it has no rows: loading, a failure, or an empty state. */
export function ListState(props: {
  loading: boolean
  error?: unknown
  empty: boolean
  children: ComponentChildren
}) {
  if (props.loading && props.error === undefined)
    return (
      <p class="loading" role="status">
        Loading…
      </p>
    )
  if (!props.empty) return null
  return <p class="empty">{props.children}</p>
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
  /** Messages about this field, shown under it and tied to it for screen readers. */
  errors?: readonly string[]
  required?: boolean
}) {
  const errorsId = `${props.id}-errors`
  const errors = props.errors ?? []
  return (
    <>
      <label for={props.id}>{props.label}</label>
      <input
        id={props.id}
        type={props.type ?? 'text'}
        placeholder={props.placeholder}
        list={props.list}
        autoComplete={props.autoComplete}
        aria-describedby={errors.length > 0 ? errorsId : props.describedBy}
        aria-invalid={errors.length > 0 ? true : undefined}
        aria-required={props.required}
        disabled={props.disabled}
        value={props.value}
        onInput={(e) => props.onValue((e.target as HTMLInputElement).value)}
      />
      <Errors id={errorsId} messages={errors} />
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
