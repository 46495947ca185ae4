/**
 * Undoing draft changes and reading merged traffic in the seeded estate: a coexistence scope
 * added and removed leaves nothing pending; a pending change reverted by keyboard after a
 * confirmation (with what depends on it), then all of them; a connection both ends reported is
 * one row and one edge, counted once. With no serious accessibility violation at 1,024 and
 * 1,600 px.
 */
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ConsoleBed } from './console.fixture.js'
import { focusedId, focusedText, O, seriousViolations, startConsole } from './console.fixture.js'
import type { Estate } from './estate.fixture.js'
import { seedEstate } from './estate.fixture.js'

type Pending = Record<string, { href: string; update_type: string }[]>

describe('reverting draft changes and reading merged flows in the console', () => {
  let bed: ConsoleBed
  let page: Page
  let estate: Estate
  const draft = `${O}/sec_policy/draft`
  const pending = () => bed.ok<Pending>('GET', `${O}/sec_policy/pending`)
  const pendingTypes = async () => Object.keys(await pending()).sort()
  const names = async (type: string) =>
    (await bed.ok<{ name: string }[]>('GET', `${draft}/${type}`)).map((x) => x.name)
  const badge = () => page.getByRole('navigation', { name: 'Main' }).locator('.badge')

  beforeAll(async () => {
    bed = await startConsole()
    page = bed.page
    estate = await seedEstate(bed)
    await bed.signIn()
  }, 120_000)

  afterAll(async () => {
    await bed?.close()
  })

  it('adds a coexistence scope and removes it again: nothing is left pending, anywhere', async () => {
    expect(await pending(), 'the seeded estate is provisioned').toEqual({})
    await bed.go('coexistence')
    const table = page.getByRole('table', { name: 'Coexistence scopes' })
    await table.waitFor()
    await page.getByRole('button', { name: 'Add', exact: true }).click()
    const dialog = page.getByRole('dialog', { name: 'Add coexistence scope' })
    await dialog.getByLabel('env', { exact: true }).selectOption({ label: 'prod' })
    await dialog.getByRole('button', { name: 'Save' }).click()
    await dialog.waitFor({ state: 'detached' })
    const banner = page.getByRole('status').filter({ hasText: 'These settings are pending' })
    await banner.waitFor()
    expect(await pendingTypes()).toEqual(['firewall_settings'])
    await expect.poll(() => badge().textContent(), { timeout: 10_000 }).toBe('1')

    await page.getByRole('button', { name: 'Remove scope 4' }).click()
    const confirm = page.getByRole('dialog', { name: 'Remove coexistence scope #4?' })
    await confirm.getByRole('button', { name: 'Remove scope' }).click()
    await confirm.waitFor({ state: 'detached' })
    await banner.waitFor({ state: 'detached' })
    expect(await pending(), 'the draft is the active policy again').toEqual({})
    await expect.poll(() => badge().count(), { timeout: 10_000 }).toBe(0)
    await bed.go('provision')
    await page.getByText('Nothing is pending').waitFor()
    expect(await page.getByRole('article').count()).toBe(0)
  })

  it('reverts one change by keyboard after a confirmation that keeps the focus, then one with what depends on it, then all', async () => {
    await bed.ok('POST', `${draft}/services`, {
      name: 'Redis',
      service_ports: [{ proto: 6, port: 6379 }],
    })
    await bed.ok('POST', `${draft}/services`, {
      name: 'Memcached',
      service_ports: [{ proto: 6, port: 11211 }],
    })
    const corporate = estate.ipLists['Corporate network'] ?? ''
    await bed.ok('PUT', `/api/v2${corporate}`, { ip_ranges: [{ from_ip: '198.18.101.0/24' }] })
    const group = await bed.ok<{ href: string }>('POST', `${draft}/label_groups`, {
      name: 'Data tier',
      key: 'role',
      labels: [{ href: estate.labels['role: db'] }],
    })
    await bed.ok('POST', `/api/v2${estate.ruleSets.global}/sec_rules`, {
      consumers: [{ ip_list: { href: corporate } }],
      providers: [{ label_group: { href: group.href } }],
      ingress_services: [{ href: estate.services.PostgreSQL }],
    })
    expect(await pendingTypes()).toEqual(['ip_lists', 'label_groups', 'rule_sets', 'services'])

    await bed.go('provision')
    const redis = page.getByRole('article', { name: 'Service: Redis' })
    await redis.waitFor()
    expect(await page.locator('main').textContent()).not.toContain('not offered')
    const revertRedis = page.getByRole('button', { name: 'Revert Service: Redis' })
    const dialog = page.getByRole('dialog', { name: 'Revert Service: Redis?' })
    const revertButton = dialog.getByRole('button', { name: 'Revert', exact: true })
    for (const width of [1024, 1600]) {
      await page.setViewportSize({ width, height: 800 })
      expect(await seriousViolations(page), `provision at ${width} px`).toEqual([])
      await revertRedis.click()
      await expect.poll(() => revertButton.isEnabled(), { timeout: 10_000 }).toBe(true)
      expect(await seriousViolations(page), `revert dialog at ${width} px`).toEqual([])
      await bed.shot(`revert-confirm-${width}`)
      await page.keyboard.press('Escape')
      await dialog.waitFor({ state: 'detached' })
    }
    await page.setViewportSize({ width: 1280, height: 800 })

    // by keyboard: the dialog starts on Cancel, Tab and Shift+Tab stay in it, Escape cancels
    await revertRedis.focus()
    await page.keyboard.press('Enter')
    await dialog.waitFor()
    expect(await dialog.textContent()).toContain('never provisioned')
    expect(await focusedText(page)).toBe('Cancel')
    await expect.poll(() => revertButton.isEnabled(), { timeout: 10_000 }).toBe(true)
    await page.keyboard.press('Tab')
    expect(await focusedText(page)).toBe('Revert')
    await page.keyboard.press('Tab')
    expect(await focusedText(page), 'focus stays in the dialog').toBe('Cancel')
    await page.keyboard.press('Shift+Tab')
    expect(await focusedText(page)).toBe('Revert')
    await page.keyboard.press('Escape')
    await dialog.waitFor({ state: 'detached' })
    expect(await focusedText(page), 'focus returns to the item').toBe('Revert')
    expect(await names('services')).toContain('Redis')
    await page.keyboard.press('Enter')
    await dialog.waitFor()
    await expect.poll(() => revertButton.isEnabled(), { timeout: 10_000 }).toBe(true)
    await page.keyboard.press('Tab')
    await page.keyboard.press('Enter')
    await page.getByRole('status').filter({ hasText: 'Reverted Service: Redis' }).waitFor()
    await redis.waitFor({ state: 'detached' })
    expect(await focusedId(page), 'focus on the page, not lost').toBe('main')
    expect(await names('services')).not.toContain('Redis')
    expect(await names('services')).toContain('Memcached')
    expect(await pendingTypes()).toEqual(['ip_lists', 'label_groups', 'rule_sets', 'services'])
    expect((await pending()).services).toHaveLength(1)
    await expect.poll(() => badge().textContent(), { timeout: 10_000 }).toBe('4')

    // a label group a pending rule uses: the rule set goes with it, and the dialog says so
    await page.getByRole('button', { name: 'Revert Label group: Data tier' }).click()
    const both = page.getByRole('dialog', { name: 'Revert Label group: Data tier?' })
    const revertBoth = both.getByRole('button', { name: 'Revert 2 changes' })
    await revertBoth.waitFor()
    expect(await both.textContent()).toContain('Modification: Rule set: global')
    await bed.shot('revert-dependency')
    await revertBoth.click()
    await page
      .getByRole('status')
      .filter({ hasText: 'Reverted 2 changes: Label group: Data tier, Rule set: global.' })
      .waitFor()
    expect(await pendingTypes()).toEqual(['ip_lists', 'services'])
    expect(await names('label_groups')).not.toContain('Data tier')
    // the same rules as provisioned (each version names its own hrefs)
    const rules = async (pv: string) =>
      (
        await bed.ok<{ name: string; rules: { href: string }[] }[]>(
          'GET',
          `${O}/sec_policy/${pv}/rule_sets`,
        )
      )
        .find((r) => r.name === 'global')
        ?.rules.map((r) => ({ ...r, href: r.href.replace('/active/', '/draft/') }))
    expect(await rules('draft')).toEqual(await rules('active'))
    expect(JSON.stringify(await rules('draft'))).not.toContain(group.href)

    // all that is left
    await page.getByRole('button', { name: 'Revert all' }).click()
    const all = page.getByRole('dialog', { name: 'Revert all 2 pending changes?' })
    expect(await all.textContent()).toContain('Addition: Service: Memcached')
    expect(await all.textContent()).toContain('Modification: IP list: Corporate network')
    await all.getByRole('button', { name: 'Revert all' }).click()
    await page.getByRole('status').filter({ hasText: 'Reverted all 2 pending changes' }).waitFor()
    expect(await pending()).toEqual({})
    await page.getByText('Nothing is pending').waitFor()
    expect(await page.getByRole('article').count()).toBe(0)
    await expect.poll(() => badge().count(), { timeout: 10_000 }).toBe(0)
    const ipList = await bed.ok<{ ip_ranges: { from_ip: string }[] }>('GET', `/api/v2${corporate}`)
    expect(ipList.ip_ranges.map((r) => r.from_ip)).toEqual(['198.18.100.0/24'])
    await bed.shot('revert-done')
  })

  it('lists a connection both ends reported once, counted once, and draws it as one edge', async () => {
    await bed.go('traffic')
    await page.getByRole('button', { name: 'Query' }).click()
    const table = page.getByRole('table', { name: 'Flows' })
    await table.waitFor()
    // eight reports from three agents; two connections were reported by both of their ends
    expect(await page.getByRole('status').filter({ hasText: 'connections' }).textContent()).toBe(
      '6 flows, 24 connections.',
    )
    const rows = table.locator('tbody tr')
    const webToDb = rows.filter({ hasText: /^web-1db-1tcp\/5432/ })
    expect(await webToDb.count()).toBe(1)
    const cells = await webToDb.locator('td').allTextContents()
    expect(cells.slice(3, 6)).toEqual(['allowed', 'both', '4'])
    expect(await rows.filter({ hasText: /^lb-1web-1tcp\/443/ }).count()).toBe(1)
    expect(await rows.filter({ hasText: /^db-1web-1/ }).count(), 'no reversed copy').toBe(0)

    const map = page.getByRole('group', { name: /Traffic map/ })
    expect(await map.getAttribute('aria-label')).toContain('6 connections')
    const web = estate.agents['web-1']?.workload_href ?? ''
    const db = estate.agents['db-1']?.workload_href ?? ''
    expect(await map.locator(`g[data-edge="${web}>${db}"]`).count()).toBe(1)
    expect(await map.locator(`g[data-edge="${db}>${web}"]`).count()).toBe(0)
    const edge = map.getByRole('button', { name: /^web-1 → db-1:/ })
    expect(await edge.count()).toBe(1)
    expect(await edge.getAttribute('aria-label')).toBe(
      'web-1 → db-1: tcp/5432; Allowed; 4 connections',
    )
    await bed.shot('revert-traffic-merged')
  })
})
