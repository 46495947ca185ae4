import { useRef, useState } from 'preact/hooks'
import { matchesQuery } from './list.js'
import { Errors } from './ui.js'

/** A choice of a picker: a stable value, the text people read, and the kind it is. */
export interface Choice {
  readonly value: string
  readonly text: string
  readonly kind: string
}

const MAX_SHOWN = 40

/**
 * Picks several things by typing part of their name: a combobox whose list narrows as one types
 * (arrows move, Enter picks, Escape closes), the picked ones shown as removable chips. Text that
 * matches nothing can still be taken when `free` reads it (a port, an address).
 */
export function MultiPicker(props: {
  id: string
  label: string
  choices: readonly Choice[]
  value: readonly Choice[]
  onChange: (next: Choice[]) => void
  placeholder?: string
  /** Reads typed text as a choice of its own, or says why it cannot be one. */
  free?: (text: string) => Choice | string
  errors?: readonly string[]
  hint?: string
  /** What is typed and not yet picked, when the form around needs it (to take it on submit). */
  text?: string
  onText?: (text: string) => void
}) {
  const [ownQuery, setOwnQuery] = useState('')
  const query = props.text ?? ownQuery
  const setQuery = (q: string) => (props.onText ?? setOwnQuery)(q)
  const [open, setOpen] = useState(false)
  const [active, setActive] = useState(0)
  const [typedError, setTypedError] = useState<string>()
  const input = useRef<HTMLInputElement>(null)
  const chosen = new Set(props.value.map((c) => c.value))
  const shown = props.choices
    .filter((c) => !chosen.has(c.value) && matchesQuery(`${c.text} ${c.kind}`, query))
    .slice(0, MAX_SHOWN)
  const listId = `${props.id}-list`
  const errorsId = `${props.id}-errors`
  const errors = [...new Set([...(typedError ? [typedError] : []), ...(props.errors ?? [])])]
  const pick = (c: Choice) => {
    props.onChange([...props.value, c])
    setQuery('')
    setActive(0)
    // Closed once picked, so the list covers nothing; typing or the arrow keys open it again.
    setOpen(false)
    setTypedError(undefined)
  }
  const takeTyped = () => {
    const text = query.trim()
    if (!text) return false
    const exact = props.choices.find((c) => c.text.toLowerCase() === text.toLowerCase())
    if (exact && !chosen.has(exact.value)) {
      pick(exact)
      return true
    }
    if (!props.free) {
      setTypedError(`Nothing is named "${text}": pick one from the list.`)
      return true
    }
    const r = props.free(text)
    if (typeof r === 'string') setTypedError(r)
    else pick(r)
    return true
  }
  const onKey = (e: KeyboardEvent) => {
    if (e.key === 'ArrowDown') {
      e.preventDefault()
      setOpen(true)
      setActive((a) => Math.min(a + 1, shown.length - 1))
    } else if (e.key === 'ArrowUp') {
      e.preventDefault()
      setActive((a) => Math.max(a - 1, 0))
    } else if (e.key === 'Enter') {
      const c = open ? shown[active] : undefined
      if (c && query) {
        e.preventDefault()
        pick(c)
      } else if (query.trim()) {
        e.preventDefault()
        takeTyped()
      }
    } else if (e.key === 'Escape' && open) {
      // Closes the list, not the dialog around it.
      e.preventDefault()
      e.stopPropagation()
      setOpen(false)
    } else if (e.key === 'Backspace' && !query && props.value.length > 0) {
      props.onChange(props.value.slice(0, -1))
    }
  }
  const activeId = open && shown[active] ? `${props.id}-opt-${active}` : undefined
  return (
    <div class="picker">
      <label for={props.id}>{props.label}</label>
      {props.value.length > 0 && (
        <ul class="chips" aria-label={`${props.label}: chosen`}>
          {props.value.map((c) => (
            <li key={c.value} class={`chip kind-${c.kind.replace(/\W/g, '-')}`}>
              <span>{c.text}</span>
              <button
                type="button"
                class="chip-remove"
                aria-label={`Remove ${c.text}`}
                onClick={() => {
                  props.onChange(props.value.filter((x) => x.value !== c.value))
                  input.current?.focus()
                }}
              >
                ×
              </button>
            </li>
          ))}
        </ul>
      )}
      <div class="combo">
        <input
          id={props.id}
          ref={input}
          type="text"
          role="combobox"
          autoComplete="off"
          aria-autocomplete="list"
          aria-expanded={open && shown.length > 0}
          aria-controls={listId}
          aria-activedescendant={activeId}
          aria-describedby={errors.length > 0 ? errorsId : undefined}
          aria-invalid={errors.length > 0 ? true : undefined}
          placeholder={props.placeholder}
          value={query}
          onInput={(e) => {
            setQuery((e.target as HTMLInputElement).value)
            setOpen(true)
            setActive(0)
            setTypedError(undefined)
          }}
          onFocus={() => setOpen(true)}
          onBlur={() => setOpen(false)}
          onKeyDown={onKey}
        />
        {
          <ul
            id={listId}
            role="listbox"
            class="options"
            aria-label={props.label}
            hidden={!(open && shown.length > 0)}
          >
            {shown.map((c, i) => (
              <li
                key={c.value}
                id={`${props.id}-opt-${i}`}
                role="option"
                aria-selected={i === active}
                class={i === active ? 'active' : undefined}
                onMouseDown={(e) => {
                  e.preventDefault()
                  pick(c)
                }}
              >
                {c.text} <span class="kind">{c.kind}</span>
              </li>
            ))}
          </ul>
        }
      </div>
      {props.hint && <p class="hint">{props.hint}</p>}
      <Errors id={errorsId} messages={errors} />
    </div>
  )
}
