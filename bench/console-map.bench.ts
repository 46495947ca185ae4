/**
 * The console's traffic map in Debian's chromium with 500 workloads and 5,000 flows seeded
 * through the API: how long the query's answer takes to draw, and the frame time of each
 * interaction (switching the map between groups and workloads, selecting a group, a node and an
 * edge): from the click to the next painted frame, measured in the page.
 */
import { randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { chromium } from 'playwright-core'
import { inParallel, withServer } from './https-client.js'

const WORKLOADS = Number(process.env.PALISADE_BENCH_WORKLOADS ?? 500)
const FLOWS = Number(process.env.PALISADE_BENCH_FLOWS ?? 5000)
const APPS = 25
const ENVS = ['prod', 'staging']

const addressOf = (i: number) => `198.18.${10 + (i >> 8)}.${i & 255}`

/**
 * Clicks the `index`th element matching `selector` in the page and resolves with the time until
 * the frame after it was painted (a timer queued from the next animation frame runs after it).
 */
function frameAfter(page: Page, selector: string, index = 0): Promise<number> {
  return page.evaluate<number>(`(async () => {
    const t0 = performance.now()
    document.querySelectorAll(${JSON.stringify(selector)})[${index}].dispatchEvent(
      new MouseEvent('click', { bubbles: true }),
    )
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)))
    return performance.now() - t0
  })()`)
}

const COUNTS = `({
  edges: document.querySelectorAll('.map .edge').length,
  nodes: document.querySelectorAll('.map .node').length,
})`

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0

export async function run(): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(tmpdir(), 'palisade-bench-console-'))
  try {
    return await withServer(
      undefined,
      async (c, url) => {
        const boot = JSON.parse(await readFile(join(dir, 'bootstrap.json'), 'utf8')) as {
          username: string
          password: string
        }
        const ok = async <T>(method: string, path: string, body?: unknown, auth?: string) => {
          const r = await c.call(method, path, body, auth)
          if (r.status >= 300) throw new Error(`${method} ${path}: ${JSON.stringify(r.body)}`)
          return r.body as T
        }
        const O = '/api/v2/orgs/1'
        const label = async (key: string, value: string) =>
          (await ok<{ href: string }>('POST', `${O}/labels`, { key, value })).href
        const apps = await Promise.all(
          Array.from({ length: APPS }, (_, i) => label('app', `app${i}`)),
        )
        const envs = await Promise.all(ENVS.map((e) => label('env', e)))
        const items = Array.from({ length: WORKLOADS }, (_, i) => ({
          name: `w${String(i).padStart(3, '0')}`,
          interfaces: [{ name: 'eth0', address: addressOf(i) }],
          labels: [{ href: apps[i % APPS] }, { href: envs[Math.floor(i / APPS) % ENVS.length] }],
        }))
        await ok('PUT', `${O}/workloads/bulk_create`, items)
        // one agent reports every flow: the store keeps what it is told, by whom does not matter
        const profile = await ok<{ href: string }>('POST', `${O}/pairing_profiles`, {
          name: 'bench',
        })
        const code = await ok<{ activation_code: string }>(
          'POST',
          `/api/v2${profile.href}/pairing_key`,
          {},
        )
        const agent = await ok<{ agent_id: string; token: string }>('POST', '/agent/v1/activate', {
          activation_code: code.activation_code,
          hostname: 'reporter',
          interfaces: [{ name: 'eth0', address: '198.18.9.1' }],
        })
        const now = Date.now()
        const flows = Array.from({ length: FLOWS }, (_, i) => {
          const src = (i * 7919) % WORKLOADS
          const dst = (src + 1 + ((i * 104729) % (WORKLOADS - 1))) % WORKLOADS
          return {
            uuid: randomUUID(),
            direction: 'inbound',
            src_ip: addressOf(src),
            dst_ip: addressOf(dst),
            port: [443, 5432, 22, 8080, 6379][i % 5],
            proto: 6,
            policy_decision: ['allowed', 'potentially_blocked', 'blocked'][i % 3],
            rule_href: null,
            num_connections: 1 + (i % 5),
            first_seen: new Date(now - 60_000).toISOString(),
            last_seen: new Date(now - 1000).toISOString(),
            dropped_downstream: false,
          }
        })
        await inParallel(Math.ceil(FLOWS / 1000), 2, async (b) => {
          await ok(
            'POST',
            `/agent/v1/agents/${agent.agent_id}/flows`,
            flows.slice(b * 1000, b * 1000 + 1000),
            `Bearer ${agent.token}`,
          )
        })

        const browser = await chromium.launch({
          executablePath: '/usr/bin/chromium',
          args: [
            '--no-sandbox',
            '--disable-gpu',
            '--no-first-run',
            '--disable-background-networking',
          ],
        })
        try {
          const ctx = await browser.newContext({
            ignoreHTTPSErrors: true,
            viewport: { width: 1280, height: 900 },
          })
          const page = await ctx.newPage()
          page.setDefaultTimeout(120_000)
          await page.goto(url)
          await page.getByLabel('Username').fill(boot.username)
          await page.getByLabel('Password').fill(boot.password)
          await page.getByRole('button', { name: 'Sign in' }).click()
          await page.goto(`${url}/#/traffic`)
          await page.getByRole('button', { name: 'Query' }).waitFor()
          const t0 = Date.now()
          await page.getByRole('button', { name: 'Query' }).click()
          await page.getByRole('group', { name: /Traffic map/ }).waitFor()
          const queryToMapMs = Date.now() - t0
          const shown = await page.evaluate<{ edges: number; nodes: number }>(COUNTS)
          const otherLevel = 'input[name="map-level"]:not(:checked)'
          const figures: Record<string, number[]> = {
            toWorkloadsMs: [],
            toGroupsMs: [],
            selectGroupMs: [],
            selectNodeMs: [],
            selectEdgeMs: [],
          }
          for (let i = 0; i < 5; i++) {
            figures.toWorkloadsMs?.push(await frameAfter(page, otherLevel))
            const counts = await page.evaluate<{ edges: number; nodes: number }>(COUNTS)
            shown.edges = Math.max(shown.edges, counts.edges)
            shown.nodes = Math.max(shown.nodes, counts.nodes)
            figures.selectNodeMs?.push(await frameAfter(page, '.map .node circle', i * 41 + 3))
            figures.selectEdgeMs?.push(
              await frameAfter(page, '.map line.edge, .map .edge .hit', i * 373 + 5),
            )
            figures.selectGroupMs?.push(await frameAfter(page, '.map .group rect', i + 2))
            figures.toGroupsMs?.push(await frameAfter(page, otherLevel))
          }
          return {
            workloads: WORKLOADS,
            flows: FLOWS,
            mapEdgesAtWorkloadLevel: shown.edges,
            mapNodesAtWorkloadLevel: shown.nodes,
            queryToMapMs,
            ...Object.fromEntries(
              Object.entries(figures).map(([k, v]) => [
                k,
                { median: +median(v).toFixed(1), max: +Math.max(...v).toFixed(1) },
              ]),
            ),
          }
        } finally {
          await browser.close()
        }
      },
      { dataDir: dir },
    )
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
