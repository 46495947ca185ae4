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

export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
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

/**
 * The messages of an error that concern one field: the API names the field's path at the start
 * of each message (`$.firewall_coexistence[0].scope[1]: ...`).
 */
export function messagesFor(e: unknown, pathPrefix: string): string[] {
  if (!(e instanceof ApiError)) return []
  return e.issues.filter((i) => i.message.startsWith(pathPrefix)).map((i) => i.message)
}

/** The messages no field claims. */
export function otherMessages(e: unknown, claimed: readonly string[]): string[] {
  if (!e) return []
  if (!(e instanceof ApiError)) return [String((e as Error).message ?? e)]
  return e.issues.map((i) => i.message).filter((m) => !claimed.some((p) => m.startsWith(p)))
}

export interface Label {
  readonly href: string
  readonly key: string
  readonly value: string
}

export const labelText = (l: Pick<Label, 'key' | 'value'>) => `${l.key}: ${l.value}`
