/**
 * Every error the API returns, from one catalogue. Illumio's shape: a JSON array of
 * `{token, message}`; validation failures are 406 Not Acceptable.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly issues: readonly { token: string; message: string }[],
    readonly headers: Record<string, string> = {},
  ) {
    super(issues.map((i) => i.message).join('; '))
  }
}

export const invalid = (issues: readonly { token: string; message: string }[]) =>
  new ApiError(406, issues)
export const invalidOne = (token: string, message: string) =>
  new ApiError(406, [{ token, message }])
export const unauthorized = () =>
  new ApiError(401, [
    {
      token: 'authentication_required',
      message: 'valid API user and secret (HTTP Basic) required',
    },
  ])
export const forbidden = (message: string) => new ApiError(403, [{ token: 'forbidden', message }])
export const notFound = (href: string) =>
  new ApiError(404, [{ token: 'not_found', message: `${href} does not exist` }])
export const tooMany = (retryAfter: number) =>
  new ApiError(
    429,
    [{ token: 'too_many_requests', message: `too many requests; retry after ${retryAfter} s` }],
    { 'Retry-After': String(retryAfter) },
  )

/** What was found, or the 404 of the href it was looked for at. */
export function orNotFound<T>(found: T | undefined, href: string): T {
  if (found === undefined) throw notFound(href)
  return found
}
