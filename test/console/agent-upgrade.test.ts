/**
 * The console's Upgrade action: managed workloads chosen on the Workloads page, a release the
 * server serves picked and confirmed, the server's answer shown, and each agent's upgrade state
 * as the API reports it, kept current while the agents (driven here through the agent channel,
 * as the estate's are) report the build they run. No serious accessibility violation.
 */
import { createHash } from 'node:crypto'
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ConsoleBed } from './console.fixture.js'
import { O, seriousViolations, startConsole } from './console.fixture.js'

const PACKAGING = join(import.meta.dirname, '../../packaging')
/** Stands for the one-file agent of release 0.2.0: the server serves bytes with a pinned hash. */
const RELEASE = Buffer.from('#!/bin/sh\necho 0.2.0\n')
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
const OLD = { version: '0.1.0', arch: 'x64', sha256: 'ab'.repeat(32) }
const NEW = { version: '0.2.0', arch: 'x64', sha256: sha(RELEASE) }

interface Paired {
  agent_id: string
  token: string
  workload_href: string
}

describe('upgrading agents from the console', () => {
  let dir: string
  let bed: ConsoleBed
  let page: Page
  const agents: Record<string, Paired> = {}
  /** A status report as the agent `name` sends it, saying which build it runs. */
  const report = (name: string, build: typeof OLD) => {
    const a = agents[name] as Paired
    return bed.api('POST', `/agent/v1/agents/${a.agent_id}/status`, { build }, `Bearer ${a.token}`)
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'palisade-console-upgrade-'))
    await writeFile(join(dir, 'palisade-agent-linux-x64'), RELEASE)
    for (const f of ['install.sh', 'palisade-agent.service'])
      await copyFile(join(PACKAGING, f), join(dir, f))
    await writeFile(
      join(dir, 'agent-manifest.json'),
      JSON.stringify({
        version: '0.2.0',
        node: 'v20.20.2',
        built_at: '2026-01-01T00:00:00Z',
        files: [
          {
            os: 'linux',
            arch: 'x64',
            file: 'palisade-agent-linux-x64',
            sha256: sha(RELEASE),
            size: RELEASE.length,
          },
        ],
      }),
    )
    bed = await startConsole({ agentDir: dir })
    page = bed.page
    const profile = await bed.ok<{ href: string }>('POST', `${O}/pairing_profiles`, {
      name: 'hosts',
    })
    for (const name of ['web-1', 'web-2', 'db-1']) {
      const { activation_code } = await bed.ok<{ activation_code: string }>(
        'POST',
        `/api/v2${profile.href}/pairing_key`,
        {},
      )
      agents[name] = await bed.ok<Paired>('POST', '/agent/v1/activate', {
        activation_code,
        hostname: name,
      })
      expect((await report(name, OLD)).status).toBe(204)
    }
    await bed.signIn()
  }, 120_000)

  afterAll(async () => {
    await bed?.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('orders the chosen agents to run a release the server serves, and shows each one reach it', async () => {
    await bed.go('workloads')
    const table = page.getByRole('table', { name: 'Workloads' })
    await table.getByRole('checkbox', { name: 'Choose web-1' }).waitFor()
    const action = page.getByRole('button', { name: /^Upgrade agents/ })
    expect(await action.isDisabled(), 'nothing chosen: no upgrade').toBe(true)
    await table.getByRole('checkbox', { name: 'Choose web-1' }).check()
    await table.getByRole('checkbox', { name: 'Choose web-2' }).check()
    await page.getByRole('button', { name: 'Upgrade agents (2)' }).click()

    const dialog = page.getByRole('dialog', { name: 'Upgrade 2 agents?' })
    const release = dialog.getByLabel('Release')
    await expect
      .poll(() => release.locator('option').allTextContents())
      .toEqual([expect.stringMatching(/^0\.2\.0 \(Node v20\.20\.2, x64, built /) as unknown])
    expect(await dialog.getByRole('listitem').allTextContents()).toEqual([
      'web-1 (runs 0.1.0)',
      'web-2 (runs 0.1.0)',
    ])
    await bed.shot('upgrade-confirm')
    expect(await seriousViolations(page), 'the confirmation').toEqual([])
    await dialog.getByRole('button', { name: 'Upgrade', exact: true }).click()
    await dialog.waitFor({ state: 'detached' })

    await expect
      .poll(() => page.getByRole('status').allTextContents())
      .toContain('Ordered 2 agents to run release 0.2.0.')
    const ordered = page.getByRole('table', { name: 'Agents ordered to upgrade' })
    const rows = () =>
      ordered
        .getByRole('row')
        .evaluateAll((trs: { innerText: string }[]) =>
          trs.slice(1).map((tr) => tr.innerText.split('\t').map((c) => c.trim())),
        )
    await expect.poll(rows).toEqual([
      ['web-1', '0.1.0', 'Upgrade to 0.2.0 pending'],
      ['web-2', '0.1.0', 'Upgrade to 0.2.0 pending'],
    ])
    // The API says the same; the agent not chosen was not ordered.
    const vens = await bed.ok<{ hostname: string; target_release: string | null }[]>(
      'GET',
      `${O}/vens`,
    )
    expect(Object.fromEntries(vens.map((v) => [v.hostname, v.target_release]))).toEqual({
      'web-1': '0.2.0',
      'web-2': '0.2.0',
      'db-1': null,
    })

    // web-1's next report is answered with the order; it then runs the release.
    const told = await report('web-1', OLD)
    expect([told.status, told.body]).toEqual([
      200,
      { upgrade: { release: '0.2.0', sha256: sha(RELEASE), size: RELEASE.length } },
    ])
    expect((await report('db-1', OLD)).status, 'not ordered: told nothing').toBe(204)
    expect((await report('web-1', NEW)).status).toBe(204)
    await expect.poll(rows, { timeout: 10_000 }).toEqual([
      ['web-1', '0.2.0', 'Runs release 0.2.0, as ordered'],
      ['web-2', '0.1.0', 'Upgrade to 0.2.0 pending'],
    ])
    const agentCell = (name: string) =>
      table.locator(`tr[data-workload="${name}"] td`).last().innerText()
    expect(await agentCell('web-1')).toMatch(/^0\.2\.0\s*Runs release 0\.2\.0, as ordered$/)
    expect(await agentCell('web-2')).toMatch(/^0\.1\.0\s*Upgrade to 0\.2\.0 pending$/)
    expect(await agentCell('db-1')).toMatch(/^0\.1\.0\s*No upgrade ordered$/)
    await bed.shot('upgrade-outcome')
    expect(await seriousViolations(page), 'the outcome').toEqual([])
  }, 60_000)
})
