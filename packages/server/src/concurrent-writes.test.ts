/**
 * Requests that race to create the same thing, on both stores: each gets the answer it would
 * get alone (a 201, or the 406 a duplicate gets), never a 500 from the database's own check.
 */
import { describe, expect, it } from 'vitest'
import type { TestServer } from './test-server.fixture.js'
import { serverOn } from './test-server.fixture.js'

const O = '/api/v2/orgs/1'
const RACERS = 16

describe.each(['sqlite', 'postgres'] as const)('racing writes on %s', (dialect) => {
  let s: TestServer
  serverOn(dialect, (server) => (s = server))

  const post = (value: string, key: string) => s.call('POST', `${O}/labels`, { key, value })

  it("labels of a new key made at once all land, and the key's label type is made once", async () => {
    const answers = await Promise.all(
      Array.from({ length: RACERS }, (_, i) => post(`v${i}`, 'racing-key')),
    )
    expect(answers.map((r) => `${r.statusCode} ${r.body.slice(0, 200)}`)).toEqual(
      answers.map((r) => `201 ${r.body.slice(0, 200)}`),
    )
    const types = (await s.call('GET', `${O}/label_dimensions`)).json() as { key: string }[]
    expect(types.filter((t) => t.key === 'racing-key')).toHaveLength(1)
  })

  it('the same label posted at once is made once; every other post gets the duplicate 406', async () => {
    const answers = await Promise.all(
      Array.from({ length: RACERS }, () => post('same', 'racing-dup')),
    )
    expect(answers.filter((r) => r.statusCode === 201)).toHaveLength(1)
    const refused = answers.filter((r) => r.statusCode !== 201)
    expect(refused.map((r) => r.statusCode)).toEqual(refused.map(() => 406))
    for (const r of refused) expect(r.json()).toMatchObject([{ token: 'label_key_value_exists' }])
    const labels = (await s.call('GET', `${O}/labels?key=racing-dup`)).json() as unknown[]
    expect(labels).toHaveLength(1)
  })

  it("a label renamed to another's value is refused with the duplicate 406, and stays as it was", async () => {
    const a = (await post('a', 'renamed')).json() as { href: string }
    await post('b', 'renamed')
    const r = await s.call('PUT', `/api/v2${a.href}`, { value: 'b' })
    expect(r.statusCode, r.body).toBe(406)
    expect(r.json()).toMatchObject([{ token: 'label_key_value_exists' }])
    expect((await s.call('GET', `/api/v2${a.href}`)).json()).toMatchObject({ value: 'a' })
  })

  it('two labels renamed to one value at once: one lands, the other is refused with a 4xx', async () => {
    const [a, b] = (await Promise.all([post('c', 'rename-race'), post('d', 'rename-race')])).map(
      (r) => (r.json() as { href: string }).href,
    )
    const answers = await Promise.all(
      [a, b].map((href) => s.call('PUT', `/api/v2${href}`, { value: 'same' })),
    )
    const codes = answers.map((r) => r.statusCode).sort()
    // 406 when the loser looked after the winner committed, 409 when both looked first
    expect([
      [204, 406],
      [204, 409],
    ]).toContainEqual(codes)
    const labels = (await s.call('GET', `${O}/labels?key=rename-race`)).json() as {
      value: string
    }[]
    const values = labels.map((l) => l.value)
    expect(values).toHaveLength(2)
    expect(values.filter((v) => v === 'same')).toHaveLength(1)
  })
})
