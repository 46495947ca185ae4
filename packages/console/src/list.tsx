import { useState } from 'preact/hooks'

/**
 * Search, sort and paging of a list the console already holds: the one way long lists are
 * narrowed, ordered and cut into pages.
 */

export interface Column<T> {
  readonly name: string
  /** What the column sorts by; a column without it does not sort. */
  readonly sort?: (x: T) => string | number
}

export interface ListView<T> {
  readonly rows: readonly T[]
  /** How many match the search, over every page. */
  readonly matching: number
  readonly page: number
  readonly pages: number
  readonly setPage: (p: number) => void
  readonly query: string
  readonly setQuery: (q: string) => void
  readonly sortBy: string | undefined
  readonly descending: boolean
  readonly sortOn: (column: string) => void
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' })

/** Every word of the query must appear in what `text` gives for an item (any case). */
export function matchesQuery(haystack: string, query: string): boolean {
  const h = haystack.toLowerCase()
  return query
    .toLowerCase()
    .split(/\s+/)
    .filter(Boolean)
    .every((w) => h.includes(w))
}

export function useListView<T>(
  items: readonly T[],
  opts: {
    text: (x: T) => string
    columns: readonly Column<T>[]
    pageSize?: number
    sortBy?: string
  },
): ListView<T> {
  const [query, setQueryState] = useState('')
  const [page, setPage] = useState(0)
  const [sortBy, setSortBy] = useState(opts.sortBy)
  const [descending, setDescending] = useState(false)
  const size = opts.pageSize ?? 50
  const hits = query ? items.filter((x) => matchesQuery(opts.text(x), query)) : [...items]
  const key = opts.columns.find((c) => c.name === sortBy)?.sort
  if (key)
    hits.sort((a, b) => {
      const [x, y] = [key(a), key(b)]
      const order =
        typeof x === 'number' && typeof y === 'number'
          ? x - y
          : collator.compare(String(x), String(y))
      return descending ? -order : order
    })
  const pages = Math.max(1, Math.ceil(hits.length / size))
  const p = Math.min(page, pages - 1)
  return {
    rows: hits.slice(p * size, p * size + size),
    matching: hits.length,
    page: p,
    pages,
    setPage,
    query,
    setQuery: (q) => {
      setQueryState(q)
      setPage(0)
    },
    sortBy,
    descending,
    sortOn: (c) => {
      if (c === sortBy) setDescending(!descending)
      else {
        setSortBy(c)
        setDescending(false)
      }
    },
  }
}

/** A header row whose sortable columns are buttons that say how the list is sorted. */
export function SortableHead<T>(props: {
  columns: readonly Column<T>[]
  view: ListView<T>
  action?: string
}) {
  const { view } = props
  return (
    <thead>
      <tr>
        {props.columns.map((c) => {
          const active = view.sortBy === c.name
          return (
            <th
              scope="col"
              key={c.name}
              aria-sort={active ? (view.descending ? 'descending' : 'ascending') : undefined}
            >
              {c.sort ? (
                <button type="button" class="sort" onClick={() => view.sortOn(c.name)}>
                  {c.name}
                  <span aria-hidden="true">{active ? (view.descending ? ' ▾' : ' ▴') : ''}</span>
                </button>
              ) : (
                c.name
              )}
            </th>
          )
        })}
        {props.action && (
          <th scope="col">
            <span class="sr-only">{props.action}</span>
          </th>
        )}
      </tr>
    </thead>
  )
}

const singular = (noun: string) => noun.replace(/s$/, '')

/** The search box of a list, with how many match. */
export function SearchBox(props: {
  id: string
  label: string
  view: ListView<unknown>
  total: number
  noun: string
  placeholder?: string
}) {
  const { view } = props
  return (
    <div class="search">
      <label for={props.id}>{props.label}</label>
      <input
        id={props.id}
        type="search"
        placeholder={props.placeholder}
        value={view.query}
        onInput={(e) => view.setQuery((e.target as HTMLInputElement).value)}
      />
      <span class="count" role="status">
        {view.query
          ? `${view.matching} of ${props.total} ${props.total === 1 ? singular(props.noun) : props.noun}`
          : `${props.total} ${props.total === 1 ? singular(props.noun) : props.noun}`}
      </span>
    </div>
  )
}

/** Previous and next page, and where the reader is. Nothing when everything fits on one page. */
export function Pager(props: { view: ListView<unknown>; label: string }) {
  const { view } = props
  if (view.pages <= 1) return null
  return (
    <nav class="pager" aria-label={props.label}>
      <button type="button" disabled={view.page === 0} onClick={() => view.setPage(view.page - 1)}>
        Previous
      </button>
      <span>
        Page {view.page + 1} of {view.pages}
      </span>
      <button
        type="button"
        disabled={view.page >= view.pages - 1}
        onClick={() => view.setPage(view.page + 1)}
      >
        Next
      </button>
    </nav>
  )
}
