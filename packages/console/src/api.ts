/** The console's only way to the server: the same REST API scripts use, with the session. */

export interface Issue {
  readonly token: string
  readonly message: string
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly issues: readonly Issue[],
  ) {
    super(issues.map((i) => i.message).join('; '))
  }
}

/** Org-scoped paths of the API. */
export const O = '/api/v2/orgs/1'

let csrf: string | undefined
export const setCsrf = (token: string | undefined) => {
  csrf = token
}

let onSignedOut: () => void = () => undefined
/** Called when the server no longer knows the session (expired, signed out elsewhere). */
export const whenSignedOut = (f: () => void) => {
  onSignedOut = f
}

export async function call<T>(
  method: string,
  path: string,
  body?: unknown,
  onResponse?: (r: Response) => void,
): Promise<T> {
  const r = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: {
      accept: 'application/json',
      ...(body !== undefined && { 'content-type': 'application/json' }),
      ...(csrf && method !== 'GET' && { 'x-csrf-token': csrf }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  })
  onResponse?.(r)
  const text = await r.text()
  let data: unknown
  try {
    data = text ? JSON.parse(text) : undefined
  } catch {
    data = text
  }
  if (!r.ok) {
    if (r.status === 401 && path !== '/session') onSignedOut()
    throw new ApiError(
      r.status,
      Array.isArray(data)
        ? (data as Issue[])
        : [
            {
              token: `http_${r.status}`,
              message: typeof data === 'string' && data ? data : r.statusText,
            },
          ],
    )
  }
  return data as T
}

/** Names the console knows for hrefs, so a message can say `label "env: prod"`, not an href. */
const knownNames = new Map<string, string>()
const draftForm = (href: string) =>
  href.replace(/\/sec_policy\/(active|\d+)\//, '/sec_policy/draft/')
export function rememberNames<T extends { href: string }>(
  items: readonly T[],
  name: (x: T) => string,
) {
  for (const x of items) knownNames.set(draftForm(x.href), name(x))
}
export const nameOfHref = (href: string) => knownNames.get(draftForm(href))

const PHRASES: [RegExp, (...m: string[]) => string][] = [
  [/^(is required|must have at least 1 character\(s\)|cannot be null)$/, () => 'Required.'],
  [/^must have at least (\d+) character\(s\)$/, (n) => `Use at least ${n} characters.`],
  [/^must have at most (\d+) characters$/, (n) => `Use at most ${n} characters.`],
  [/^must be at least (-?\d+)$/, (n) => `Use ${n} or more.`],
  [/^must be at most (-?\d+)$/, (n) => `Use ${n} or less.`],
  [/^must be a whole number$/, () => 'Use a whole number.'],
  [/^must be one of (.*)$/, (v) => `Choose one of ${v}.`],
]

/**
 * A message of the API as a person reads it: without the JSON path (the field it stands beside
 * says where), in plain words, with names instead of hrefs.
 */
export function plainMessage(message: string): string {
  const m = /^\$[^\s:]*: (.*)$/s.exec(message)
  let text = m ? (m[1] ?? '') : message
  for (const [re, say] of PHRASES) {
    const hit = re.exec(text)
    if (hit) {
      text = say(...hit.slice(1))
      break
    }
  }
  text = text.replace(/\/orgs\/\d+\/[\w/-]+/g, (href) => {
    const name = nameOfHref(href)
    return name ? `"${name}"` : href
  })
  return text.charAt(0).toUpperCase() + text.slice(1)
}

/**
 * The messages of an error that concern one field: the API names the field's path at the start
 * of each message (`$.firewall_coexistence[0].scope[1]: ...`).
 */
export function messagesFor(e: unknown, pathPrefix: string): string[] {
  if (!(e instanceof ApiError)) return []
  return e.issues
    .filter((i) => i.message.startsWith(pathPrefix))
    .map((i) => plainMessage(i.message))
}

/** The messages no field claims. */
export function otherMessages(e: unknown, claimed: readonly string[]): string[] {
  if (!e) return []
  if (!(e instanceof ApiError)) return [String((e as Error).message ?? e)]
  return e.issues
    .map((i) => i.message)
    .filter((m) => !claimed.some((p) => m.startsWith(p)))
    .map(plainMessage)
}

/** A collection and how many the server holds (`x-total-count`), which may be more. */
export async function callList<T>(path: string): Promise<{ items: T[]; total: number }> {
  let total = 0
  const items = await call<T[]>('GET', path, undefined, (r) => {
    total = Number(r.headers.get('x-total-count') ?? 0)
  })
  return { items, total: Math.max(total, items.length) }
}

export interface Label {
  readonly href: string
  readonly key: string
  readonly value: string
}

export const labelText = (l: Pick<Label, 'key' | 'value'>) => `${l.key}: ${l.value}`
