/**
 * The web console in a real browser (Debian's chromium driven by playwright-core) against a
 * real `palisade server` on SQLite with TLS: sign in, labels, a coexistence scope through the
 * dialog, provisioning, a managed workload's effective mode changing live, a refused scope that
 * stores nothing, and the other pages. Screenshots of each page go to artifacts/console/.
 */
import { randomUUID } from 'node:crypto'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Api, Boot, ConsoleBed } from './console.fixture.js'
import { O, startConsole } from './console.fixture.js'

describe('web console in chromium', () => {
  let bed: ConsoleBed
  let boot: Boot
  let page: Page
  let api: Api
  const shot = (name: string) => bed.shot(name)
  const go = (route: string) => bed.go(route)

  beforeAll(async () => {
    bed = await startConsole()
    ;({ boot, page, api } = bed)
  }, 60_000)

  afterAll(async () => {
    await bed?.close()
  })

  it('signs in with the bootstrap admin, by keyboard alone, after refusing a wrong password', async () => {
    await page.goto(bed.server.url)
    await shot('01-sign-in')
    await page.getByLabel('Username').fill(boot.username)
    await page.getByLabel('Password').fill('wrong')
    await page.getByRole('button', { name: 'Sign in' }).click()
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('wrong')
    await page.getByLabel('Password').fill('')
    await page.getByLabel('Password').focus()
    await page.keyboard.type(boot.password)
    await page.keyboard.press('Enter')
    await page.getByRole('navigation', { name: 'Main' }).waitFor()
    // the session cookie is HttpOnly and Secure: scripts in the page cannot read it
    const cookies = await page.context().cookies()
    expect(cookies.find((c) => c.name === 'palisade_session')).toMatchObject({
      httpOnly: true,
      secure: true,
      sameSite: 'Strict',
    })
    expect(await page.evaluate<string>('document.cookie')).toBe('')
  })

  it('refuses a change from the session without its CSRF token', async () => {
    const status = await page.evaluate(async (o) => {
      const r = await fetch(`${o}/labels`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ key: 'env', value: 'forged' }),
      })
      return r.status
    }, O)
    expect(status).toBe(403)
    const labels = (await api('GET', `${O}/labels?value=forged`)).body as unknown[]
    expect(labels).toEqual([])
  })

  it('creates labels on the Policy page', async () => {
    await go('policy')
    for (const [key, value] of [
      ['env', 'prod'],
      ['env', 'staging'],
      ['app', 'web'],
    ] as const) {
      await page.getByLabel('Key').fill(key)
      await page.getByLabel('Value').fill(value)
      await page.getByRole('button', { name: 'Create label' }).click()
      await page.getByRole('cell', { name: value, exact: true }).waitFor()
    }
    // a duplicate is refused by the API, and its message stands next to the form
    await page.getByLabel('Key').fill('env')
    await page.getByLabel('Value').fill('prod')
    await page.getByRole('button', { name: 'Create label' }).click()
    await page.getByRole('alert').first().waitFor()
    expect(await page.getByLabel('Value').inputValue(), 'nothing typed is lost').toBe('prod')
    await shot('02-policy-labels')
    const labels = (await api('GET', `${O}/labels`)).body as { key: string; value: string }[]
    expect(
      labels
        .filter((l) => l.key === 'env')
        .map((l) => l.value)
        .sort(),
    ).toEqual(['prod', 'staging'])
  })

  it('adds a rule set and a rule on the Policy page, and edits the rule; a refused save keeps it', async () => {
    await go('policy')
    await page.getByRole('tab', { name: 'Rule sets' }).click()
    await page.getByRole('button', { name: 'Add rule set' }).click()
    await page.getByLabel('Name').fill('web tier')
    await page.getByRole('button', { name: 'Create rule set' }).click()
    await page
      .getByRole('article', { name: 'Rule set web tier' })
      .getByRole('button', { name: 'Add rule' })
      .click()
    const add = page.getByRole('form', { name: 'New rule in web tier' })
    await add.getByLabel('Action').selectOption('deny')
    await add.getByRole('combobox', { name: 'Sources' }).fill('env: prod')
    await add.getByRole('combobox', { name: 'Sources' }).press('Enter')
    await add.getByRole('combobox', { name: 'Destinations' }).fill('app: web')
    await add.getByRole('combobox', { name: 'Destinations' }).press('Enter')
    await add.getByLabel('Ports').fill('tcp/8443')
    await add.getByRole('button', { name: 'Add rule' }).click()
    const rules = page.getByRole('table', { name: 'Rules of web tier' })
    await rules.getByRole('cell', { name: 'tcp/8443' }).waitFor()
    type Rules = {
      name: string
      rules: unknown[]
      deny_rules: { href: string; override: boolean; ingress_services: unknown[] }[]
    }[]
    const stored = async () =>
      ((await api('GET', `${O}/sec_policy/draft/rule_sets`)).body as Rules).find(
        (r) => r.name === 'web tier',
      )
    const created = (await stored())?.deny_rules[0]
    expect(created).toMatchObject({ override: false, ingress_services: [{ proto: 6, port: 8443 }] })

    await rules.getByRole('button', { name: 'Edit rule' }).click()
    const edit = page.getByRole('form', { name: 'Edit rule in web tier' })
    expect(await edit.getByLabel('Ports').inputValue()).toBe('tcp/8443')
    expect(await edit.getByRole('list', { name: 'Sources: chosen' }).textContent()).toContain(
      'env: prod',
    )
    expect(
      await edit.locator('option[value="allow"]').isDisabled(),
      'a deny rule cannot become an allow rule in place',
    ).toBe(true)
    await edit.getByLabel('Ports').fill('tcp/99999')
    await edit.getByRole('button', { name: 'Save rule' }).click()
    await edit.getByRole('alert').waitFor()
    expect(await edit.getByLabel('Ports').inputValue(), 'nothing typed is lost').toBe('tcp/99999')
    expect((await stored())?.deny_rules[0], 'a refused save stores nothing').toEqual(created)

    await edit.getByLabel('Ports').fill('tcp/9443')
    await edit.getByLabel('Action').selectOption('override_deny')
    await shot('02b-policy-rule-edit')
    await edit.getByRole('button', { name: 'Save rule' }).click()
    await edit.waitFor({ state: 'detached' })
    await rules.getByRole('cell', { name: 'tcp/9443' }).waitFor()
    const after = await stored()
    expect(after?.deny_rules).toHaveLength(1)
    expect(after?.deny_rules[0]).toMatchObject({
      href: created?.href,
      override: true,
      ingress_services: [{ proto: 6, port: 9443 }],
    })
    expect(after?.rules).toEqual([])
  })

  it('reads exclusions in a rule and in a scope as they match', async () => {
    const labels = (await api('GET', `${O}/labels`)).body as {
      href: string
      key: string
      value: string
    }[]
    const hrefOf = (key: string, value: string) =>
      labels.find((l) => l.key === key && l.value === value)?.href
    // a label of its own for the scope: the later tests delete env: staging
    const legacy = await api('POST', `${O}/labels`, { key: 'tier', value: 'legacy' })
    expect(legacy.status).toBe(201)
    const rs = await api('POST', `${O}/sec_policy/draft/rule_sets`, {
      name: 'all but legacy',
      scopes: [[{ label: { href: (legacy.body as { href: string }).href }, exclusion: true }]],
    })
    expect(rs.status).toBe(201)
    const rule = await api('POST', `/api/v2${(rs.body as { href: string }).href}/sec_rules`, {
      providers: [{ label: { href: hrefOf('app', 'web') } }],
      consumers: [{ label: { href: hrefOf('env', 'prod') }, exclusion: true }],
      ingress_services: [{ proto: 6, port: 7443 }],
    })
    expect(rule.status).toBe(201)
    await go('policy')
    await page.getByRole('tab', { name: 'Rule sets' }).click()
    const card = page.getByRole('article', { name: 'Rule set all but legacy' })
    await card
      .getByRole('cell', { name: 'all workloads with an env label except env: prod', exact: true })
      .waitFor()
    expect(await card.textContent()).toContain('tier: not legacy')
  })

  let agent: { token: string; agent_id: string; workload_href: string }
  it('makes a pairing profile and an activation code, with the command to run; a paired workload appears live', async () => {
    await go('pairing')
    await page.getByLabel('Name').fill('web servers')
    await page.getByLabel('env', { exact: true }).selectOption({ label: 'prod' })
    await page.getByLabel('app', { exact: true }).selectOption({ label: 'web' })
    await page.getByRole('button', { name: 'Create profile' }).click()
    await page.getByRole('cell', { name: 'web servers' }).waitFor()
    await page.getByRole('button', { name: 'Generate activation code' }).click()
    const code = (await page.getByTestId('activation-code').textContent()) ?? ''
    expect(code).toMatch(/^[0-9a-f]{20,}$/)
    const command = (await page.getByTestId('activation-command').textContent()) ?? ''
    expect(command).toContain(`palisade agent activate --management-server 127.0.0.1:`)
    expect(command).toContain(`--activation-code ${code}`)
    expect(command).toContain(`--ca-cert ${boot.ca_cert}`)
    expect(await page.getByTestId('install-unavailable').textContent()).toContain(
      'run `npm run package`',
    )
    await shot('03-pairing')
    await go('workloads')
    // an agent activates with the code (the agent channel, as `palisade agent activate` does)
    const r = await api('POST', '/agent/v1/activate', {
      activation_code: code,
      hostname: 'web-1',
      interfaces: [{ name: 'eth0', address: '198.18.0.21' }],
    })
    expect(r.status).toBe(201)
    agent = r.body as typeof agent
    const row = page.locator('tr[data-workload="web-1"]')
    await row.waitFor({ timeout: 10_000 })
    expect(await row.locator('td.mode').textContent()).toContain('Exclusive')
  })

  it('adds a coexistence scope through the dialog; it stays pending until provisioned', async () => {
    await go('coexistence')
    await expect
      .poll(() => page.locator('main').textContent())
      .toContain('only firewall on a workload')
    await page.getByRole('button', { name: 'Add' }).click()
    const dialog = page.getByRole('dialog', { name: 'Add coexistence scope' })
    await dialog.waitFor()
    await dialog.getByLabel('env', { exact: true }).selectOption({ label: 'prod' })
    await dialog.getByLabel('All').check()
    await dialog.getByLabel('Yes').check()
    await shot('04-coexistence-dialog')
    await dialog.getByRole('button', { name: 'Save' }).click()
    await dialog.waitFor({ state: 'detached' })
    await page.getByRole('status').filter({ hasText: 'pending' }).waitFor()
    // row 1 is the fixed Default row
    const row = page.getByRole('table', { name: 'Coexistence scopes' }).getByRole('row').nth(2)
    expect(await row.textContent()).toContain('env: prod')
    expect(await row.textContent()).toContain('Yes')
    await shot('05-coexistence')
    const draft = (await api('GET', `${O}/sec_policy/draft/firewall_settings`)).body as {
      firewall_coexistence: unknown[]
    }
    expect(draft.firewall_coexistence).toHaveLength(1)
  })

  it('shows the API message next to the scope for a refused scope, keeps the dialog as entered, and stores nothing', async () => {
    const staging = ((await api('GET', `${O}/labels?value=staging`)).body as { href: string }[])[0]
    await page.getByRole('button', { name: 'Add' }).click()
    const dialog = page.getByRole('dialog', { name: 'Add coexistence scope' })
    await dialog.getByLabel('env', { exact: true }).selectOption({ label: 'staging' })
    await dialog.getByLabel('No').check()
    // the label goes away while the dialog is open
    expect((await api('DELETE', `/api/v2${staging?.href}`)).status).toBe(204)
    await dialog.getByRole('button', { name: 'Save' }).click()
    const message = dialog.locator('#scope-errors')
    await message.waitFor()
    expect(await message.textContent()).toContain('"env: staging" does not exist')
    expect(await dialog.getByLabel('No').isChecked(), 'what was entered is kept').toBe(true)
    await shot('06-coexistence-refused')
    await dialog.getByRole('button', { name: 'Cancel' }).click()
    const draft = (await api('GET', `${O}/sec_policy/draft/firewall_settings`)).body as {
      firewall_coexistence: unknown[]
    }
    expect(draft.firewall_coexistence).toHaveLength(1)
  })

  it('provisions from the Provision page, and the workload turns coexistence primary without a reload', async () => {
    await go('workloads')
    const mode = page.locator('tr[data-workload="web-1"] td.mode')
    expect(await mode.textContent()).toContain('Exclusive')
    await go('provision')
    await page.getByRole('article').first().waitFor()
    expect(await page.locator('main').textContent()).toContain('Firewall settings')
    await page.getByLabel('Commit message').fill('web prod coexists, primary')
    await shot('07-provision')
    await page.getByRole('button', { name: 'Provision all' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Provision now' }).click()
    await page.getByRole('status').filter({ hasText: 'Provisioned as version' }).waitFor()
    expect(await page.getByRole('table', { name: 'Policy versions' }).textContent()).toContain(
      'web prod coexists, primary',
    )
    await page.locator('a[href="#/workloads"]').click()
    await expect
      .poll(() => mode.textContent(), { timeout: 10_000 })
      .toContain('Coexistence, primary')
    expect(await mode.textContent()).toContain('env: prod')
    await shot('08-workloads')
    // editable enforcement: the change reaches the API
    await page.getByLabel('Enforcement of web-1').selectOption('full')
    await page.getByRole('dialog').getByRole('button', { name: 'Change enforcement' }).click()
    await expect
      .poll(
        async () =>
          ((await api('GET', `/api/v2${agent.workload_href}`)).body as { enforcement_mode: string })
            .enforcement_mode,
      )
      .toBe('full')
  })

  it('edits and removes a coexistence scope; the active settings stay until provisioned', async () => {
    await go('coexistence')
    const table = page.getByRole('table', { name: 'Coexistence scopes' })
    await table.getByRole('button', { name: 'Edit' }).click()
    const dialog = page.getByRole('dialog', { name: 'Edit coexistence scope' })
    expect(await dialog.getByLabel('Yes').isChecked(), 'the dialog opens with the scope').toBe(true)
    await dialog.getByLabel('Enforced', { exact: true }).check()
    await dialog.getByLabel('No').check()
    await dialog.getByRole('button', { name: 'Save' }).click()
    await dialog.waitFor({ state: 'detached' })
    await page.getByRole('status').filter({ hasText: 'pending' }).waitFor()
    type Settings = { firewall_coexistence: { illumio_primary: boolean; workload_mode?: string }[] }
    const settings = async (which: 'draft' | 'active') =>
      (await api('GET', `${O}/sec_policy/${which}/firewall_settings`)).body as Settings
    expect((await settings('draft')).firewall_coexistence).toEqual([
      expect.objectContaining({ illumio_primary: false, workload_mode: 'enforced' }),
    ])
    expect((await settings('active')).firewall_coexistence).toEqual([
      expect.objectContaining({ illumio_primary: true }),
    ])
    expect(await table.getByRole('row').nth(2).textContent()).toContain('Enforced')
    await table.getByRole('button', { name: 'Remove' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Remove scope' }).click()
    await expect.poll(async () => (await settings('draft')).firewall_coexistence).toEqual([])
    await expect.poll(() => table.textContent()).not.toContain('env: prod')
    expect((await settings('active')).firewall_coexistence).toHaveLength(1)
  })

  it('shows events with before and after, filtered by type', async () => {
    await go('events')
    await page.getByLabel('Type').fill('firewall_settings.update')
    await page.getByLabel('Type').press('Enter')
    await page.getByRole('button', { name: 'Details' }).first().click()
    const changes = page.getByRole('table', { name: 'Changes' }).first()
    await changes.waitFor()
    expect(await changes.textContent()).toContain('firewall coexistence')
    expect(await page.getByRole('table', { name: 'Events' }).textContent()).not.toContain(
      'label.create',
    )
    await shot('09-events')
  })

  it('queries traffic, lists flows with their decision and draws the map', async () => {
    const now = Date.now()
    const flow = (src: string, port: number, decision: string) => ({
      uuid: randomUUID(),
      direction: 'inbound',
      src_ip: src,
      dst_ip: '198.18.0.21',
      port,
      proto: 6,
      policy_decision: decision,
      rule_href: null,
      num_connections: 3,
      first_seen: new Date(now - 5000).toISOString(),
      last_seen: new Date(now).toISOString(),
      dropped_downstream: false,
    })
    const r = await api(
      'POST',
      `/agent/v1/agents/${agent.agent_id}/flows`,
      [
        flow('198.18.0.30', 443, 'allowed'),
        flow('198.19.5.5', 22, 'blocked'),
        flow('198.18.0.31', 8080, 'potentially_blocked'),
      ],
      `Bearer ${agent.token}`,
    )
    expect(r.status).toBe(204)
    await go('traffic')
    await page.getByRole('button', { name: 'Query' }).click()
    const table = page.getByRole('table', { name: 'Flows' })
    await table.waitFor()
    expect(await table.getByRole('row').count()).toBe(4)
    expect(await table.textContent()).toContain('potentially blocked')
    expect(await page.locator('svg .edge.blocked line.stroke').count()).toBe(1)
    expect(
      await page.getByRole('group', { name: /Traffic map/ }).getAttribute('aria-label'),
    ).toContain('3 connections')
    await shot('10-traffic')
    await page.getByLabel('Services').fill('tcp/22')
    await page.getByRole('button', { name: 'Query' }).click()
    await expect.poll(() => table.getByRole('row').count()).toBe(2)
  })

  it('shows a workload page with its host, impact and events', async () => {
    await go('workloads')
    await page.getByRole('link', { name: 'web-1' }).click()
    await page.getByRole('heading', { name: 'Host survey' }).waitFor()
    expect(await page.locator('main').textContent()).toContain('198.18.0.21')
    await shot('11-workload')
  })

  it('works in a narrow window', async () => {
    await page.setViewportSize({ width: 390, height: 800 })
    await go('workloads')
    const overflow = await page.evaluate<number>(
      'document.documentElement.scrollWidth - window.innerWidth',
    )
    expect(overflow).toBeLessThanOrEqual(0)
    await shot('12-workloads-narrow')
    await go('coexistence')
    await shot('13-coexistence-narrow')
    await page.setViewportSize({ width: 1280, height: 800 })
  })

  it('signs out', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.getByRole('button', { name: 'Sign in' }).waitFor()
    const status = await page.evaluate(async (o) => (await fetch(`${o}/labels`)).status, O)
    expect(status).toBe(401)
  })
})
