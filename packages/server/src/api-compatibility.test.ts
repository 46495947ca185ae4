/**
 * docs/api-compatibility.md is kept true: every route of the server's OpenAPI document has a
 * row there, every row is a route, and each row lists exactly the route's query parameters.
 */
import { readFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestServer } from './test-server.fixture.js'
import { testServer } from './test-server.fixture.js'

const DOC = new URL('../../../docs/api-compatibility.md', import.meta.url)
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH']

interface OpenApi {
  paths: Record<string, Record<string, { parameters?: { name: string; in: string }[] }>>
}

/** The rows of the route table: `| METHOD | \`path\` | params | … |`, keyed `METHOD path`. */
export function routeRows(markdown: string): Map<string, string[]> {
  const rows = new Map<string, string[]>()
  for (const line of markdown.split('\n')) {
    const cells = line.split('|').map((c) => c.trim())
    if (cells.length < 6 || !METHODS.includes(cells[1] ?? '')) continue
    const path = /^`([^`]+)`$/.exec(cells[2] ?? '')?.[1]
    if (!path) throw new Error(`a route row without a \`path\`: ${line}`)
    const key = `${cells[1]} ${path}`
    if (rows.has(key)) throw new Error(`${key} has two rows`)
    const params = [...(cells[3] ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1] ?? '')
    rows.set(key, params.sort())
  }
  return rows
}

describe('docs/api-compatibility.md against /api/v2/openapi.json', () => {
  let s: TestServer
  let api: Map<string, string[]>
  let doc: Map<string, string[]>
  beforeAll(async () => {
    s = await testServer()
    const openapi = (await s.app.inject({ url: '/api/v2/openapi.json' })).json<OpenApi>()
    api = new Map(
      Object.entries(openapi.paths).flatMap(([path, ops]) =>
        Object.entries(ops).map(([method, op]): [string, string[]] => [
          `${method.toUpperCase()} ${path}`,
          (op.parameters ?? [])
            .filter((p) => p.in === 'query')
            .map((p) => p.name)
            .sort(),
        ]),
      ),
    )
    doc = routeRows(await readFile(DOC, 'utf8'))
  })
  afterAll(async () => {
    await s?.close()
  })

  it('has a row for every route the server has', () => {
    expect(api.size).toBeGreaterThan(100)
    expect([...api.keys()].filter((r) => !doc.has(r))).toEqual([])
  })

  it('names no route the server does not have', () => {
    expect([...doc.keys()].filter((r) => !api.has(r))).toEqual([])
  })

  it("lists exactly each route's query parameters", () => {
    const wrong = [...api].flatMap(([route, params]) => {
      const listed = doc.get(route) ?? []
      return JSON.stringify(listed) === JSON.stringify(params)
        ? []
        : [
            `${route}: the doc lists [${listed.join(', ')}], the server takes [${params.join(', ')}]`,
          ]
    })
    expect(wrong).toEqual([])
  })

  it('types each query parameter in the OpenAPI document as the server reads it', async () => {
    const openapi = (await s.app.inject({ url: '/api/v2/openapi.json' })).json<{
      paths: Record<
        string,
        Record<
          string,
          {
            security: unknown[]
            parameters?: { name: string; in: string; schema: unknown; 'x-palisade'?: true }[]
          }
        >
      >
    }>()
    const params = openapi.paths['/api/v2/orgs/{org}/workloads']?.get?.parameters ?? []
    const of = (name: string) => params.find((p) => p.name === name)
    expect(of('online')?.schema).toEqual({ type: 'boolean' })
    expect(of('max_results')?.schema).toEqual({ type: 'integer', minimum: 0 })
    expect(of('enforcement_mode')?.schema).toEqual({
      type: 'string',
      enum: ['idle', 'visibility_only', 'selective', 'full'],
    })
    expect(of('last_heartbeat_on[gte]')?.schema).toEqual({ type: 'string', format: 'date-time' })
    expect(of('match_type')?.['x-palisade']).toBe(true)
    expect(of('online')?.['x-palisade']).toBeUndefined()
    expect(of('org')).toMatchObject({ in: 'path', required: true })
    const events = openapi.paths['/api/v2/orgs/{org}/events']?.get?.parameters ?? []
    expect(events.find((p) => p.name === 'max_results')?.schema).toEqual({
      type: 'integer',
      minimum: 0,
      maximum: 10_000,
    })
    expect(openapi.paths['/api/v2/login_users/authenticate']?.post?.security).toEqual([
      { password: [] },
    ])
    expect(openapi.paths['/api/v2/users/login']?.get?.security).toEqual([
      { authToken: [] },
      { apiKey: [] },
    ])
    expect(openapi.paths['/api/v2/health']?.get?.security).toEqual([])
    expect(openapi.paths['/api/v2/orgs/{org}/labels']?.get?.security).toEqual([{ apiKey: [] }])
  })

  it('reads a row, and refuses a malformed or repeated one', () => {
    const row = '| GET | `/api/v2/x` | `a`, `b[gte]` | does | not |'
    expect([...routeRows(row)]).toEqual([['GET /api/v2/x', ['a', 'b[gte]']]])
    expect([...routeRows('| PUT | `/api/v2/x` | — | does | — |')]).toEqual([['PUT /api/v2/x', []]])
    expect(() => routeRows('| GET | /api/v2/x | — | does | — |')).toThrow(/without a `path`/)
    expect(() => routeRows(`${row}\n${row}`)).toThrow(/two rows/)
    expect(routeRows('| Family | Palisade does | Does not |').size).toBe(0)
  })
})
