/**
 * The console over a seeded estate (labels, services, IP lists, two rule sets, ten unmanaged and
 * three managed workloads, coexistence scopes, flows, a tampering event), read as an
 * administrator reads it: every page at 1,024 px and wide, with no serious accessibility
 * violation; readable names, lists that search, sort and page; a workload's rules as its agent
 * gets them, and a packet explained; events that keep what is typed.
 */
import { computeHostPolicy } from '@palisade/model'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadedSnapshot } from './console-policy.fixture.js'
import type { ConsoleBed, Rect } from './console.fixture.js'
import { O, seriousViolations, startConsole } from './console.fixture.js'
import type { Estate } from './estate.fixture.js'
import { seedEstate, waitForPolicy } from './estate.fixture.js'

const PAGES = ['workloads', 'policy', 'traffic', 'provision', 'coexistence', 'pairing', 'events']

describe('the console over a seeded estate', () => {
  let bed: ConsoleBed
  let page: Page
  let estate: Estate
  const idOf = (href: string) => href.split('/').pop() ?? ''

  beforeAll(async () => {
    bed = await startConsole()
    page = bed.page
    estate = await seedEstate(bed)
    await bed.signIn()
  }, 120_000)

  afterAll(async () => {
    await bed?.close()
  })

  it('shows every page at 1,024 px and wide with no serious accessibility violation, the navigation on one line', async () => {
    for (const width of [1024, 1600]) {
      await page.setViewportSize({ width, height: 800 })
      for (const route of [
        ...PAGES,
        `workloads/${idOf(estate.agents['db-1']?.workload_href ?? '')}`,
      ]) {
        await bed.go(route)
        // the page has its data (no loading state left)
        await expect.poll(() => page.getByText('Loading…').count(), { timeout: 10_000 }).toBe(0)
        if (route === 'traffic') {
          await page.getByRole('button', { name: 'Query' }).click()
          await page.getByRole('table', { name: 'Flows' }).waitFor()
        }
        await bed.shot(
          `estate-${route.startsWith('workloads/') ? 'workload-db-1' : route}-${width}`,
        )
        expect(await seriousViolations(page), `${route} at ${width} px`).toEqual([])
        const tops = await page
          .getByRole('navigation', { name: 'Main' })
          .getByRole('link')
          .evaluateAll((links: Rect[]) =>
            links.map((l) => Math.round(l.getBoundingClientRect().top)),
          )
        expect(new Set(tops).size, `the navigation wraps at ${width} px`).toBe(1)
      }
    }
    await page.setViewportSize({ width: 1280, height: 800 })
  })

  it('lists workloads with readable values, addresses, a count, search, a filter and sorting; unmanaged ones cannot be enforced', async () => {
    await bed.go('workloads')
    const table = page.getByRole('table', { name: 'Workloads' })
    await table.waitFor()
    expect(await page.getByRole('status').filter({ hasText: 'workloads' }).textContent()).toBe(
      '13 workloads',
    )
    const text = (await table.textContent()) ?? ''
    for (const raw of ['visibility_only', 'flow_summary', 'coexistence_primary', 'full'])
      expect(text).not.toContain(raw)
    expect(text).toContain('198.18.0.22')
    const legacy = page.locator('tr[data-workload="legacy-01"]')
    expect(await legacy.textContent()).toContain('Unmanaged: not enforced')
    expect(await legacy.locator('select').count()).toBe(0)
    expect(await legacy.locator('td.mode').textContent()).not.toContain('Coexistence')
    const db = page.locator('tr[data-workload="db-1"]')
    expect(await db.locator('td.mode').textContent()).toContain('matched coexistence scope #3')
    expect(await db.textContent()).toContain('Visibility only')

    await page.getByLabel('Search').fill('198.18.0.2')
    await expect
      .poll(() => page.getByRole('status').filter({ hasText: 'workloads' }).textContent())
      .toBe('3 of 13 workloads')
    await page.getByLabel('Search').fill('')
    await page.getByLabel('Show').selectOption('unmanaged')
    await expect.poll(() => table.locator('tbody tr').count()).toBe(10)
    await page.getByLabel('Show').selectOption('all')
    await table.getByRole('button', { name: 'Name' }).click()
    expect(await table.getByRole('columnheader', { name: 'Name' }).getAttribute('aria-sort')).toBe(
      'descending',
    )
    expect(await table.locator('tbody tr').first().getAttribute('data-workload')).toBe('web-1')
  })

  it('asks before an enforcement change: Cancel changes nothing, confirming applies it', async () => {
    await bed.go('workloads')
    const web = estate.agents['web-1']
    const mode = async () =>
      (await bed.ok<{ enforcement_mode: string }>('GET', `/api/v2${web?.workload_href}`))
        .enforcement_mode
    await page.getByLabel('Enforcement of web-1').selectOption('selective')
    const dialog = page.getByRole('dialog', { name: 'Change the enforcement of web-1?' })
    expect(await dialog.textContent()).toContain('From Visibility only to Selective')
    await dialog.getByRole('button', { name: 'Cancel' }).click()
    await dialog.waitFor({ state: 'detached' })
    expect(await mode()).toBe('visibility_only')
    expect(await page.getByLabel('Enforcement of web-1').inputValue()).toBe('visibility_only')
    await page.getByLabel('Enforcement of web-1').selectOption('selective')
    await dialog.getByRole('button', { name: 'Change enforcement' }).click()
    await expect.poll(mode).toBe('selective')
    await bed.ok('PUT', `/api/v2${web?.workload_href}`, { enforcement_mode: 'visibility_only' })
  })

  it("shows a workload's rules, inbound and outbound, exactly as its agent gets them", async () => {
    const db = estate.agents['db-1']
    if (!db) throw new Error('no db-1')
    await bed.go(`workloads/${idOf(db.workload_href)}`)
    const inbound = page.getByRole('table', { name: 'Inbound rules' })
    await inbound.waitFor()
    const text = (await inbound.textContent()) ?? ''
    expect(text).toContain('role: web')
    expect(text).toContain('tcp/5432')
    expect(text).toContain('Known bad (IP list)')
    expect(text).toContain('Corporate network (IP list)')
    // the server's own host policy for db-1, against what the console computes from the API
    const served = (await waitForPolicy(bed, db)).policy
    const mine = computeHostPolicy(await loadedSnapshot(bed), db.workload_href)
    expect({ ...mine, version: served.version }).toEqual(served)
    expect(await inbound.locator('tbody tr').count()).toBe(
      served.rules.filter((r) => r.direction === 'inbound').length,
    )
    await bed.shot('estate-workload-rules')
  })

  it('explains a packet through every firewall on the host, and says when a foreign rule decides', async () => {
    const db = estate.agents['db-1']
    await bed.go(`workloads/${idOf(db?.workload_href ?? '')}`)
    const form = page.getByRole('form', { name: 'Explain a packet' })
    await form.getByLabel('Peer address').fill('198.18.0.21')
    await form.getByLabel('Port').fill('7000')
    await form.getByRole('button', { name: 'Explain' }).click()
    const out = page.getByRole('region', { name: 'Explanation' })
    await out.waitFor()
    expect(await out.textContent()).toContain('Dropped by a foreign rule')
    expect(await out.textContent()).toContain('tcp dport 7000 drop')
    expect(await out.getByRole('table', { name: 'Packet path' }).locator('tbody tr').count()).toBe(
      3,
    )
    // a refused address stands next to its field
    await form.getByLabel('Peer address').fill('nosuch')
    await form.getByRole('button', { name: 'Explain' }).click()
    await form.locator('#ex-peer-errors').waitFor()
    expect(await form.locator('#ex-peer-errors').textContent()).toBe(
      '"nosuch" is not an IP address',
    )
    expect(await out.count(), 'no old answer under a new error').toBe(0)
    await bed.shot('estate-explain')
  })

  it('says what it does not know: an unreported ruleset, a wrong id, an unknown page; and leads back', async () => {
    const web = estate.agents['web-1']
    await bed.go(`workloads/${idOf(web?.workload_href ?? '')}`)
    await page.getByRole('heading', { name: 'Coexistence impact' }).waitFor()
    const main = (await page.locator('main').textContent()) ?? ''
    expect(main).toContain('has not reported its host')
    expect(main).not.toContain('No foreign rule changes')
    await bed.go('workloads/nosuch')
    await page.getByRole('heading', { name: 'Workload not found' }).waitFor()
    expect(await page.locator('main').textContent()).not.toContain('/orgs/')
    await page.getByRole('navigation', { name: 'Breadcrumb' }).getByRole('link').click()
    await page.getByRole('table', { name: 'Workloads' }).waitFor()
    await bed.go('nosuch/page')
    await page.getByRole('heading', { name: 'Page not found' }).waitFor()
    await bed.shot('estate-404')
  })

  it('keeps what is typed in the event filter while the list refreshes, and reads a tampering event', async () => {
    await bed.go('events')
    await page.getByRole('table', { name: 'Events' }).waitFor()
    await page.getByLabel('Type').fill('agent.tamp')
    // the list refreshes every 3 s; what is typed must survive two refreshes
    const before = await page.evaluate(() => performance.now())
    await page.waitForFunction((t) => performance.now() - t > 6500, before, { timeout: 15_000 })
    expect(await page.getByLabel('Type').inputValue()).toBe('agent.tamp')
    await page.getByLabel('Type').fill('agent.tampering')
    await page.getByLabel('Type').press('Enter')
    await expect
      .poll(() => page.getByRole('table', { name: 'Events' }).locator('tbody tr').count())
      .toBe(1)
    await page.getByRole('button', { name: 'Details' }).click()
    const details = page.locator('.event-details')
    expect(await details.textContent()).toContain('iptables-nft (pid 4242)')
    expect(await details.textContent()).not.toContain('{')
    await details.getByRole('link', { name: 'db-1' }).click()
    await page.getByRole('heading', { name: 'db-1' }).waitFor()
  })

  it('pages long event lists', async () => {
    for (let i = 0; i < 60; i++)
      await bed.ok('POST', `${O}/labels`, { key: 'loc', value: `rack-${i}` })
    await bed.go('events')
    const pager = page.getByRole('navigation', { name: 'Event pages' })
    await pager.waitFor()
    expect(await page.getByRole('table', { name: 'Events' }).locator('tbody tr').count()).toBe(50)
    await pager.getByRole('button', { name: 'Next' }).click()
    expect(await pager.textContent()).toContain('Page 2 of')
  })
})
