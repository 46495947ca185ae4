import type { FilterSpec } from './query/filter-kinds.js'
import { filtersOfRoute } from './query/filter-registry.js'

/** A query parameter's schema, by its kind. */
function schemaOf(f: FilterSpec): Record<string, unknown> {
  switch (f.kind) {
    case 'bool':
    case 'flag':
      return { type: 'boolean' }
    case 'int':
      return {
        type: 'integer',
        ...(f.min !== undefined && { minimum: f.min }),
        ...(f.max !== undefined && { maximum: f.max }),
      }
    case 'enum':
      return { type: 'string', enum: f.values }
    case 'time':
      return { type: 'string', format: 'date-time' }
    default:
      return { type: 'string' }
  }
}

/** The query parameters a route takes (see query/filter-registry.ts). */
const queryParameters = (method: string, url: string) =>
  filtersOfRoute(`${method} ${url.replace(/^\/api\/v2/, '')}`).map((f) => ({
    name: f.name,
    in: 'query',
    required: false,
    schema: schemaOf(f),
    description: [
      f.kind === 'partial'
        ? 'Partial match.'
        : f.kind === 'labels'
          ? 'JSON list of lists of label hrefs.'
          : '',
      f.note ?? '',
    ]
      .filter(Boolean)
      .join(' '),
    ...(f.palisade && { 'x-palisade': true }),
  }))

/** Session login's two steps: a password for an auth token, the token for a session. */
const SESSION_LOGIN: Record<string, Record<string, never[]>[]> = {
  '/api/v2/login_users/authenticate': [{ password: [] }],
  '/api/v2/users/login': [{ authToken: [] }, { apiKey: [] }],
}

/**
 * An OpenAPI 3 document of the routes this server actually has (collected as they register),
 * so it cannot drift from the code, with each route's query parameters from the one registry
 * the server checks them against. Object shapes follow Illumio Core's public API v2.
 */
export function openApiDocument(
  routes: readonly { method: string; url: string }[],
): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const r of routes) {
    if (r.url === '/api/v2/openapi.json' || r.url === '*') continue
    const path = r.url.replace(/:(\w+)/g, '{$1}')
    const params = [
      ...[...r.url.matchAll(/:(\w+)/g)].map((m) => ({
        name: m[1],
        in: 'path',
        required: true,
        schema: { type: 'string' },
      })),
      ...queryParameters(r.method, r.url),
    ]
    const agent = r.url.startsWith('/agent/')
    ;(paths[path] ??= {})[r.method.toLowerCase()] = {
      operationId: `${r.method.toLowerCase()} ${path}`,
      tags: [
        agent
          ? 'agent channel'
          : (path.split('/')[5] ?? path.split('/')[3] ?? 'api').replace(/[{}]/g, ''),
      ],
      ...(params.length > 0 && { parameters: params }),
      security: agent
        ? [{ agentToken: [] }]
        : path === '/api/v2/health' || path === '/api/v2/product_version'
          ? []
          : (SESSION_LOGIN[path] ?? [{ apiKey: [] }]),
      responses: {
        ...(r.method === 'POST'
          ? { 201: { description: 'created' } }
          : r.method === 'GET'
            ? { 200: { description: 'ok (collections carry X-Total-Count)' } }
            : { 204: { description: 'done, no body' } }),
        401: { description: 'no valid credentials' },
        403: { description: 'not your org, or not your agent' },
        404: { description: 'no such object' },
        406: { description: 'invalid input: [{token, message}]' },
        429: { description: 'rate limited; see Retry-After' },
      },
    }
  }
  return {
    openapi: '3.0.3',
    info: {
      title: 'Palisade policy server',
      version: '0.1.0',
      description: "Illumio Core public API v2 compatible, plus Palisade's agent channel",
    },
    components: {
      securitySchemes: {
        apiKey: {
          type: 'http',
          scheme: 'basic',
          description:
            'an API key (auth_username and secret), or session credentials (user_<id> and session_token from GET /users/login)',
        },
        password: {
          type: 'http',
          scheme: 'basic',
          description: "a user's username and password (session login's first step)",
        },
        authToken: {
          type: 'apiKey',
          in: 'header',
          name: 'Authorization',
          description:
            'Token token=<auth_token>, from POST /login_users/authenticate (once, within 30 s)',
        },
        agentToken: {
          type: 'http',
          scheme: 'bearer',
          description: "an agent's own credential, from activation",
        },
      },
    },
    paths,
  }
}
