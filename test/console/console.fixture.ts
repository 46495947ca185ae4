/**
 * The console's test bed: a real `palisade server` (SQLite, TLS) in a temporary directory,
 * Debian's chromium driven by playwright-core, the API as a script calls it, screenshots into
 * artifacts/console/, and an accessibility check with axe-core.
 */
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { RunningServer } from '@palisade/server'
import { startServer } from '@palisade/server'
import type { Browser, Page } from 'playwright-core'
import { chromium } from 'playwright-core'
import { expect } from 'vitest'

export const CHROMIUM = '/usr/bin/chromium'
export const SHOTS = join(import.meta.dirname, '../../artifacts/console')
export const O = '/api/v2/orgs/1'
const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js')

export interface Boot {
  username: string
  password: string
  api_user: string
  api_secret: string
  ca_cert: string
}

export type Api = (
  method: string,
  path: string,
  body?: unknown,
  auth?: string,
) => Promise<{ status: number; body: unknown; headers: Record<string, unknown> }>

export interface ConsoleBed {
  readonly server: RunningServer
  readonly boot: Boot
  readonly browser: Browser
  readonly page: Page
  readonly api: Api
  /** The API's answer, which must be a success. */
  readonly ok: <T>(method: string, path: string, body?: unknown, auth?: string) => Promise<T>
  readonly shot: (name: string) => Promise<void>
  readonly go: (route: string) => Promise<void>
  readonly signIn: () => Promise<void>
  readonly close: () => Promise<void>
}

/** `agentDir`: an agent package for the server to serve (default: none). */
export async function startConsole(opts: { agentDir?: string } = {}): Promise<ConsoleBed> {
  // A browser test that cannot find its browser must fail, not pass quietly.
  expect(
    existsSync(CHROMIUM),
    `${CHROMIUM} is missing: install Debian's chromium (scripts/setup.sh)`,
  ).toBe(true)
  const dir = await mkdtemp(join(tmpdir(), 'palisade-console-'))
  // no agent package (the install test builds its own): the Pairing page says what to run instead
  const server = await startServer({
    listen: '127.0.0.1:0',
    dataDir: dir,
    tls: 'auto',
    agentDir: opts.agentDir ?? join(dir, 'no-agent-package'),
  })
  const boot = JSON.parse(await readFile(server.bootstrapFile, 'utf8')) as Boot
  const ca = await readFile(boot.ca_cert, 'utf8')
  await mkdir(SHOTS, { recursive: true })
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
  // The server's certificate comes from its own CA, which this throwaway profile does not hold.
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 800 },
  })
  const page = await context.newPage()
  page.setDefaultTimeout(10_000)

  /** The API with the bootstrap API key, as a script would call it. */
  const api: Api = (method, path, body, auth) =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body)
      const req = request(
        `${server.url}${path}`,
        {
          method,
          ca,
          headers: {
            authorization:
              auth ??
              `Basic ${Buffer.from(`${boot.api_user}:${boot.api_secret}`).toString('base64')}`,
            ...(payload && { 'content-type': 'application/json' }),
          },
        },
        (res) => {
          let text = ''
          res.on('data', (c: Buffer) => (text += c.toString()))
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              body: text ? (JSON.parse(text) as unknown) : undefined,
              headers: res.headers,
            }),
          )
        },
      )
      req.on('error', reject)
      req.end(payload)
    })
  const ok = async <T>(method: string, path: string, body?: unknown, auth?: string) => {
    const r = await api(method, path, body, auth)
    expect(r.status, `${method} ${path}: ${JSON.stringify(r.body)}`).toBeLessThan(300)
    return r.body as T
  }
  return {
    server,
    boot,
    browser,
    page,
    api,
    ok,
    shot: async (name) => {
      await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true })
    },
    go: async (route) => {
      // A fresh load: a hash change alone would leave the last page's title in place a moment.
      await page.goto('about:blank')
      await page.goto(`${server.url}/#/${route}`)
      await page.locator('#page-title').waitFor()
    },
    signIn: async () => {
      await page.goto(server.url)
      await page.getByLabel('Username').fill(boot.username)
      await page.getByLabel('Password').fill(boot.password)
      await page.getByRole('button', { name: 'Sign in' }).click()
      await page.getByRole('navigation', { name: 'Main' }).waitFor()
    },
    close: async () => {
      await browser.close()
      await server.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

export interface AxeViolation {
  id: string
  impact: string | null
  help: string
  nodes: { target: string[] }[]
}

/** The page's accessibility violations of serious or critical impact, by axe-core. */
export async function seriousViolations(page: Page): Promise<string[]> {
  // Evaluated through the browser's debugging channel, which the console's CSP does not govern
  // (an injected script tag would be refused, as it should be).
  await page.evaluate(`${await readFile(AXE, 'utf8')}\n;0`)
  const found = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run: (o: unknown) => Promise<unknown> } }).axe
    const r = (await axe.run({ resultTypes: ['violations'] })) as { violations: unknown[] }
    return r.violations
  })
  return (found as AxeViolation[])
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map(
      (v) =>
        `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`,
    )
}

/** The id and text of the element that has the focus (evaluated in the page). */
export const focusedId = (page: Page) => page.evaluate<string>('document.activeElement?.id ?? ""')
export const focusedText = (page: Page) =>
  page.evaluate<string>('document.activeElement?.textContent ?? ""')

/** What a test reads of an element in the page (the tests' types know no DOM). */
export interface Rect {
  getBoundingClientRect(): { top: number; height: number }
}
