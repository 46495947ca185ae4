/**
 * Changing the seeded estate through the console as an administrator would: a rule that names an
 * IP list, a label group and a named service; coexistence scopes by keyboard alone, with the
 * duplicate refused, the contradiction pointed out and removal confirmed; a provision of chosen
 * changes, by keyboard, previewed host by host; the traffic map selected and a rule written from
 * it; and a query that names nothing.
 */
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ConsoleBed, Rect } from './console.fixture.js'
import { focusedId, focusedText, O, startConsole } from './console.fixture.js'
import type { Estate } from './estate.fixture.js'
import { seedEstate } from './estate.fixture.js'

interface RuleDoc {
  href: string
  consumers: Record<string, { href: string } | string>[]
  providers: Record<string, { href: string } | string>[]
  ingress_services: Record<string, unknown>[]
}
interface RuleSetDoc {
  href: string
  name: string
  rules: RuleDoc[]
  deny_rules: RuleDoc[]
}
type Settings = {
  firewall_coexistence: {
    scope: { href: string }[]
    illumio_primary: boolean
    workload_mode?: string
  }[]
}

describe('changing the seeded estate through the console', () => {
  let bed: ConsoleBed
  let page: Page
  let estate: Estate
  const ruleSet = async (name: string) =>
    (await bed.ok<RuleSetDoc[]>('GET', `${O}/sec_policy/draft/rule_sets`)).find(
      (r) => r.name === name,
    ) as RuleSetDoc
  const settings = () => bed.ok<Settings>('GET', `${O}/sec_policy/draft/firewall_settings`)
  const focused = () => focusedId(page)

  beforeAll(async () => {
    bed = await startConsole()
    page = bed.page
    estate = await seedEstate(bed)
    await bed.signIn()
  }, 120_000)

  afterAll(async () => {
    await bed?.close()
  })

  it('reads rules by name, and writes one that names an IP list, a label group and a service', async () => {
    await bed.go('policy')
    await page.getByRole('tab', { name: 'Rule sets' }).click()
    const shop = page.getByRole('table', { name: 'Rules of shop prod' })
    await shop.waitFor()
    expect(await shop.textContent()).toContain('PostgreSQL')
    expect(await shop.textContent()).toContain('HTTPS')
    const global = page.getByRole('table', { name: 'Rules of global' })
    const deny = global.locator('tr.rule-deny')
    expect(await deny.textContent()).toContain('Known bad (IP list)')
    expect(await deny.textContent()).toContain('All workloads')
    expect(await deny.textContent()).toContain('All services')
    expect(await page.getByRole('form', { name: /^New rule/ }).count(), 'no form until asked').toBe(
      0,
    )
    await bed.shot('changes-policy-rule-sets')

    await page
      .getByRole('article', { name: 'Rule set global' })
      .getByRole('button', { name: 'Add rule' })
      .click()
    const form = page.getByRole('form', { name: 'New rule in global' })
    await form.getByRole('button', { name: 'Add rule' }).click()
    expect(await form.locator('[id$="-errors"]').first().textContent()).toBe(
      'Choose at least one source.',
    )
    const sources = form.getByRole('combobox', { name: 'Sources' })
    await sources.pressSequentially('Corp')
    expect(await page.getByRole('listbox', { name: 'Sources' }).textContent()).toContain(
      'Corporate network',
    )
    await sources.press('ArrowDown')
    await sources.press('Enter')
    const destinations = form.getByRole('combobox', { name: 'Destinations' })
    await destinations.pressSequentially('Front')
    await destinations.press('Enter')
    const services = form.getByRole('combobox', { name: 'Services' })
    await services.pressSequentially('SSH')
    await services.press('Enter')
    await bed.shot('changes-policy-rule-form')
    await form.getByRole('button', { name: 'Add rule' }).click()
    await form.waitFor({ state: 'detached' })
    const rules = (await ruleSet('global')).rules
    const added = rules[rules.length - 1]
    const groups = await bed.ok<{ href: string; name: string }[]>(
      'GET',
      `${O}/sec_policy/draft/label_groups`,
    )
    expect(added).toMatchObject({
      consumers: [{ ip_list: { href: estate.ipLists['Corporate network'] } }],
      providers: [{ label_group: { href: groups.find((g) => g.name === 'Front tier')?.href } }],
      ingress_services: [{ href: estate.services.SSH }],
    })
    const row = global.locator('tbody tr').filter({ hasText: 'Front tier' })
    expect(await row.textContent()).toContain('Corporate network (IP list)')
    expect(await row.textContent()).toContain('SSH')
    expect(await row.textContent()).toContain('Addition pending')
  })

  it('adds, refuses and removes coexistence scopes by keyboard alone; focus stays in the dialog', async () => {
    await bed.go('coexistence')
    const table = page.getByRole('table', { name: 'Coexistence scopes' })
    await table.waitFor()
    expect(await table.getByRole('row').nth(1).textContent()).toContain('Default')
    expect(await table.getByRole('row').nth(4).textContent()).toMatch(/^3role: db/)
    const add = page.getByRole('button', { name: 'Add', exact: true })
    await add.focus()
    await page.keyboard.press('Enter')
    const dialog = page.getByRole('dialog', { name: 'Add coexistence scope' })
    await dialog.waitFor()
    expect(await focused()).toBe('scope-app')
    await page.keyboard.press('Tab')
    expect(await focused()).toBe('scope-env')
    await page.keyboard.press('p') // env: prod
    await page.keyboard.press('Tab') // loc
    await page.keyboard.press('Tab') // role
    await page.keyboard.press('Tab') // Enforcement: All
    await page.keyboard.press('ArrowRight') // Enforced
    await page.keyboard.press('Tab') // Primary: Yes
    await page.keyboard.press('ArrowRight') // No
    await page.keyboard.press('Tab') // Cancel
    await page.keyboard.press('Tab') // Save
    await page.keyboard.press('Tab') // back to the first field: focus stays in the dialog
    expect(await focused()).toBe('scope-app')
    await page.keyboard.press('Shift+Tab')
    expect(await focusedText(page)).toBe('Save')
    await bed.shot('changes-coexistence-keyboard')
    await page.keyboard.press('Enter')
    await dialog.waitFor({ state: 'detached' })
    expect(await focusedText(page), 'focus returns to Add').toBe('Add')
    expect((await settings()).firewall_coexistence[3]).toEqual({
      scope: [{ href: estate.labels['env: prod'] }],
      illumio_primary: false,
      workload_mode: 'enforced',
    })

    // the same scope as #1 again: refused before anything is sent
    await page.keyboard.press('Enter')
    await dialog.waitFor()
    await page.keyboard.press('Tab')
    await page.keyboard.press('s') // env: staging
    const warning = dialog.getByRole('alert')
    expect(await warning.textContent()).toContain('Scope #1 already says exactly this')
    expect(await dialog.getByRole('button', { name: 'Save' }).isDisabled()).toBe(true)
    // the opposite of #1: pointed out, and saved only when asked twice
    await dialog.getByLabel('No').check()
    expect(await warning.textContent()).toContain('Scope #1 has the same labels')
    await dialog.getByRole('button', { name: 'Save' }).click()
    await dialog.getByRole('button', { name: 'Save anyway' }).waitFor()
    expect((await settings()).firewall_coexistence).toHaveLength(4)
    await bed.shot('changes-coexistence-contradiction')
    await dialog.getByRole('button', { name: 'Save anyway' }).click()
    await dialog.waitFor({ state: 'detached' })
    expect((await settings()).firewall_coexistence).toHaveLength(5)

    // Escape closes without saving; Remove asks first
    await page.getByRole('button', { name: 'Remove scope 5' }).click()
    const confirm = page.getByRole('dialog', { name: 'Remove coexistence scope #5?' })
    await confirm.waitFor()
    await page.keyboard.press('Escape')
    await confirm.waitFor({ state: 'detached' })
    expect((await settings()).firewall_coexistence).toHaveLength(5)
    await page.getByRole('button', { name: 'Remove scope 5' }).click()
    await confirm.getByRole('button', { name: 'Remove scope' }).click()
    await expect.poll(async () => (await settings()).firewall_coexistence.length).toBe(4)
  })

  it('provisions chosen changes by keyboard, after a preview of the hosts they change and a required message', async () => {
    await bed.ok('POST', `${O}/sec_policy/draft/services`, {
      name: 'Redis',
      service_ports: [{ proto: 6, port: 6379 }],
    })
    await bed.go('provision')
    const settingsItem = page.getByRole('article', { name: 'Firewall settings' })
    await settingsItem.waitFor()
    const main = (await page.locator('main').textContent()) ?? ''
    expect(main, 'no href in a readable diff').not.toContain('/orgs/')
    expect(await page.getByRole('article', { name: 'Rule set: global' }).textContent()).toContain(
      'Allow Corporate network (IP list) → Front tier (label group) on SSH',
    )
    expect(await settingsItem.textContent()).toContain(
      'Coexistence scope #4: env: prod; enforcement Enforced; Palisade primary: No',
    )
    // keep only the rule set: Space on the other two
    await settingsItem.getByRole('checkbox').focus()
    await page.keyboard.press('Space')
    await page.getByRole('article', { name: 'Service: Redis' }).getByRole('checkbox').focus()
    await page.keyboard.press('Space')
    const affected = page.getByRole('list', { name: 'Workloads affected' })
    await expect.poll(() => affected.locator('li').count()).toBe(2)
    expect(await affected.textContent()).toContain('web-1')
    expect(await affected.textContent()).toContain('lb-1')
    const versions = async () => (await bed.ok<unknown[]>('GET', `${O}/sec_policy`)).length
    const before = await versions()
    // no message: refused next to the field, nothing provisioned
    const submit = page.getByRole('button', { name: 'Provision 1 selected' })
    await submit.focus()
    await page.keyboard.press('Enter')
    expect(await page.locator('#commit-message-errors').textContent()).toContain(
      'Write a commit message',
    )
    expect(await versions()).toBe(before)
    await page.getByLabel('Commit message').focus()
    await page.keyboard.type('SSH from the office to the front tier')
    await page.keyboard.press('Tab')
    await page.keyboard.press('Enter')
    const confirm = page.getByRole('dialog', { name: 'Provision 1 change?' })
    await confirm.waitFor()
    expect(await confirm.textContent()).toContain('2 workloads with an agent get a new policy')
    await bed.shot('changes-provision-confirm')
    await page.keyboard.press('Tab') // Cancel -> Provision now
    expect(await focusedText(page)).toBe('Provision now')
    await page.keyboard.press('Enter')
    await page.getByRole('status').filter({ hasText: 'Provisioned as version' }).waitFor()
    const list = await bed.ok<{ version: number; workloads_affected: number }[]>(
      'GET',
      `${O}/sec_policy`,
    )
    expect(list[0]?.workloads_affected, 'the preview counted what the server did').toBe(2)
    const pending = await bed.ok<Record<string, unknown[]>>('GET', `${O}/sec_policy/pending`)
    expect(Object.keys(pending).sort()).toEqual(['firewall_settings', 'services'])
  })

  it('asks before deleting a rule; refuses a port it cannot read next to the field, before sending; makes a label group', async () => {
    await bed.go('policy')
    await page.getByRole('tab', { name: 'Rule sets' }).click()
    const shop = page.getByRole('article', { name: 'Rule set shop prod' })
    const count = async () => (await ruleSet('shop prod')).rules.length
    const before = await count()
    await shop.getByRole('button', { name: 'Delete rule 1' }).click()
    const confirm = page.getByRole('dialog', { name: 'Delete this rule of shop prod?' })
    expect(await confirm.textContent()).toContain('Allow role: web to role: db on PostgreSQL')
    await confirm.getByRole('button', { name: 'Cancel' }).click()
    expect(await count()).toBe(before)

    await page.getByRole('tab', { name: 'Services' }).click()
    await page.getByLabel('Name').fill('Web alt')
    await page.getByLabel('Ports').fill('tcp/https')
    await page.getByRole('button', { name: 'Create service' }).click()
    expect(await page.locator('#service-ports-errors').textContent()).toContain(
      '"tcp/https" is not a port',
    )
    const names = async () =>
      (await bed.ok<{ name: string }[]>('GET', `${O}/sec_policy/draft/services`)).map((s) => s.name)
    expect(await names()).not.toContain('Web alt')
    await page.getByLabel('Ports').fill('tcp/8443')
    await page.getByRole('button', { name: 'Create service' }).click()
    await page.getByRole('cell', { name: 'Web alt', exact: true }).waitFor()
    expect(await names()).toContain('Web alt')

    await page.getByRole('tab', { name: 'Label groups' }).click()
    await page.getByLabel('Name').fill('Data tier')
    await page.getByLabel('Key').selectOption('role')
    const members = page.getByRole('combobox', { name: 'Labels' })
    await members.pressSequentially('db')
    await members.press('Enter')
    await page.getByRole('button', { name: 'Create label group' }).click()
    await page.getByRole('cell', { name: 'Data tier', exact: true }).waitFor()
    const group = (
      await bed.ok<{ name: string; key: string; labels: { href: string }[] }[]>(
        'GET',
        `${O}/sec_policy/draft/label_groups`,
      )
    ).find((g) => g.name === 'Data tier')
    expect(group).toMatchObject({ key: 'role', labels: [{ href: estate.labels['role: db'] }] })
  })

  it('refuses a query that names nothing, next to the field, and drops the old results', async () => {
    await bed.go('traffic')
    await page.getByRole('button', { name: 'Query' }).click()
    const flows = page.getByRole('table', { name: 'Flows' })
    await flows.waitFor()
    await page.getByRole('combobox', { name: 'Source' }).fill('role: nosuch')
    await page.getByRole('button', { name: 'Query' }).click()
    const message = page.locator('#tq-src-errors')
    await message.waitFor()
    expect(await message.textContent()).toContain('Nothing is named "role: nosuch"')
    expect(await message.textContent()).not.toContain('$.')
    await flows.waitFor({ state: 'detached' })
    await bed.shot('changes-traffic-refused')
  })

  it('selects an edge and a group on the map, lists their flows, and writes a rule from the selection', async () => {
    await page.setViewportSize({ width: 1024, height: 800 })
    await bed.go('traffic')
    await page.getByRole('button', { name: 'Query' }).click()
    const map = page.getByRole('group', { name: /Traffic map/ })
    await map.waitFor()
    // legible at 1,024 px: the text keeps its size (the map is not scaled down)
    const heights = await map
      .locator('text.node-name')
      .evaluateAll((ts: Rect[]) => ts.map((t) => t.getBoundingClientRect().height))
    expect(Math.min(...heights)).toBeGreaterThanOrEqual(12)
    expect(await map.locator('text.port').first().textContent()).toMatch(/^tcp\/\d+/)

    const edge = map.getByRole('button', { name: /^web-1 → db-1: tcp\/5432/ })
    await edge.focus()
    await page.keyboard.press('Enter')
    const selection = page.getByRole('region', { name: 'Selection' })
    expect(await selection.textContent()).toContain('web-1 → db-1')
    const rows = page.getByRole('table', { name: 'Flows' }).locator('tbody tr')
    for (const text of await rows.allTextContents()) expect(text).toMatch(/^web-1db-1tcp\/5432/)
    await bed.shot('changes-traffic-edge-1024')
    await selection.getByRole('button', { name: 'Write a rule for this' }).click()
    const dialog = page.getByRole('dialog', { name: 'Write a rule' })
    await dialog.getByLabel('Rule set').selectOption({ label: 'shop prod' })
    const form = dialog.getByRole('form', { name: 'New rule in shop prod' })
    expect(await form.getByRole('list', { name: 'Sources: chosen' }).textContent()).toContain(
      'web-1',
    )
    expect(await form.getByRole('list', { name: 'Destinations: chosen' }).textContent()).toContain(
      'db-1',
    )
    expect(await form.getByLabel('Ports').inputValue()).toBe('tcp/5432')
    await form.getByRole('button', { name: 'Add rule' }).click()
    await dialog.getByRole('status').waitFor()
    const rule = (await ruleSet('shop prod')).rules.at(-1)
    expect(rule).toMatchObject({
      consumers: [{ workload: { href: estate.agents['web-1']?.workload_href } }],
      providers: [{ workload: { href: estate.agents['db-1']?.workload_href } }],
      ingress_services: [{ proto: 6, port: 5432 }],
    })
    await dialog.getByRole('button', { name: 'Close' }).click()

    // a group: what reaches it, written as a rule about its labels
    await page.getByLabel('Groups (app and env)').check()
    await map.getByRole('button', { name: 'shop | prod', exact: true }).click()
    expect(await selection.textContent()).toContain('group shop | prod')
    await selection.getByRole('button', { name: 'Write a rule for this' }).click()
    const groupForm = dialog.getByRole('form', { name: /^New rule in/ })
    const dests =
      (await groupForm.getByRole('list', { name: 'Destinations: chosen' }).textContent()) ?? ''
    expect(dests).toContain('app: shop')
    expect(dests).toContain('env: prod')
    expect(await groupForm.getByLabel('Ports').inputValue()).toContain('tcp/5432')
    await bed.shot('changes-traffic-group-rule')
    await page.keyboard.press('Escape')
    await dialog.waitFor({ state: 'detached' })
    await page.setViewportSize({ width: 1280, height: 800 })
  })
})
