/**
 * The server's HTTP application: authentication, errors in the vendor's shape, and the routes.
 * Data flows one way: route registrars (api/*, agent-channel/*) check a request, call the
 * stores (stores/*, the only modules that query) and pure modules (policy/, provisioning/,
 * traffic/, hrefs.ts), and shape the answer; host-policy/ computes the hosts' policies after a
 * change and hands them to the agents waiting for them.
 */
import Fastify from 'fastify'
import { LONG_POLL_SECONDS } from '@palisade/protocol'
import type { FastifyInstance } from 'fastify'
import { registerAgentChannel } from './agent-channel/agent-channel.js'
import { registerAgentInstall } from './agent-install.js'
import { authenticate } from './api-auth.js'
import { AuthFailures } from './auth-failures.js'
import { registerApiKeys } from './api/api-keys.js'
import { registerEvents } from './api/events.js'
import { registerFirewallSettings } from './api/firewall-settings.js'
import { registerHostAnalysis } from './api/host-analysis.js'
import { registerLabelDimensions } from './api/label-dimensions.js'
import { registerLabels } from './api/labels.js'
import { registerMisc } from './api/misc.js'
import { registerOrgSettings } from './api/org-settings.js'
import { registerPairing } from './api/pairing.js'
import { registerPolicyObjects } from './api/policy-objects.js'
import { registerPolicyRules } from './api/policy-rules.js'
import { registerProvisioning } from './api/provisioning.js'
import { registerServiceBindings } from './api/service-bindings.js'
import { registerServiceAccounts } from './api/service-accounts.js'
import { registerTraffic } from './api/traffic.js'
import { registerUsers } from './api/users.js'
import { registerVens } from './api/vens.js'
import { registerWorkloads } from './api/workloads.js'
import { registerConsoleSession } from './console-session.js'
import { registerConsole } from './console-static.js'
import type { AppContext } from './context.js'
import { storeUnavailable } from './db/unavailable.js'
import { uniqueViolation } from './db/unique-violation.js'
import { ApiError } from './errors.js'
import { json } from './http.js'
import { LogRepeats } from './log-repeats.js'
import { registerMetrics } from './metrics.js'
import { openApiDocument } from './openapi.js'
import { checkQuery } from './query/query-filters.js'
import { PerMinuteLimit } from './rate-limit.js'
import { recordAuthFailures } from './stores/events.js'

/** How long a client may take, on one connection, before the server drops it. */
export interface HttpTimeouts {
  /** To send a request's headers. */
  readonly headersMs: number
  /** To send a whole request, its body included. */
  readonly requestMs: number
  /**
   * Idle between requests on a kept-alive connection (longer than the pause between an agent's
   * long-polls). A request being answered has none: a long-poll or a large async job may take
   * long, and a client that is slow to send is ended by the two above.
   */
  readonly keepAliveMs: number
}

export const DEFAULT_TIMEOUTS: HttpTimeouts = {
  headersMs: 10_000,
  requestMs: 30_000,
  keepAliveMs: (LONG_POLL_SECONDS + 20) * 1000,
}

export interface AppOptions {
  readonly https?: { key: string; cert: string }
  readonly logger?: boolean | { readonly level: string }
  /** Requests per minute per API user (the vendor's limit is 500); more get 429. */
  readonly ratePerMinute?: number
  /** Agent activation attempts per minute per source address (default 20). */
  readonly activationsPerMinute?: number
  readonly timeouts?: Partial<HttpTimeouts>
  /** Failed authentications per minute per source address before it gets 429 (default 30). */
  readonly authFailuresPerMinute?: number
}

/** How often the audit events of failed authentication are written (see AuthFailures). */
const FAILURE_EVENTS_MS = 10_000
/** How often the count of requests answered 503 while the store is away is logged. */
const UNAVAILABLE_SUMMARY_MS = 10_000

export async function buildApp(ctx: AppContext, opts: AppOptions = {}): Promise<FastifyInstance> {
  const t = { ...DEFAULT_TIMEOUTS, ...opts.timeouts }
  // Node looks for connections past their header or request timeout this often (default 30 s).
  const node = {
    headersTimeout: t.headersMs,
    connectionsCheckingInterval: Math.min(1000, t.headersMs),
  }
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: 16 * 1024 * 1024,
    requestTimeout: t.requestMs,
    keepAliveTimeout: t.keepAliveMs,
    ...(opts.https ? { https: { ...opts.https, ...node } } : { http: node }),
    // The server names every request itself; a client's own X-Request-ID is logged apart
    // (client_request_id), so it can neither forge nor collide with ours.
    requestIdHeader: false,
    // The Go SDK joins a base URL and an href into /api/v2//users/1/api_keys.
    routerOptions: { ignoreDuplicateSlashes: true },
    genReqId: () => crypto.randomUUID(),
  })
  app.addHook('onRequest', (req, reply, done) => {
    reply.header('x-request-id', req.id)
    const theirs = req.headers['x-request-id']
    if (typeof theirs === 'string')
      req.log = req.log.child({ client_request_id: theirs.slice(0, 128) })
    done()
  })
  // Any JSON body is accepted as text first, so a malformed one gets our 406, not a 400/500.
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser(/^application\/json/, { parseAs: 'string' }, (_req, body, done) => {
    if (body === '') return done(null, undefined)
    try {
      done(null, JSON.parse(body as string))
    } catch (e) {
      done(
        new ApiError(406, [
          { token: 'invalid_json', message: `the body is not valid JSON: ${(e as Error).message}` },
        ]),
        undefined,
      )
    }
  })
  const unavailableLog = new LogRepeats()
  const unavailableSummary = setInterval(() => {
    const held = unavailableLog.summary()
    if (held)
      app.log.warn({
        msg: `database unavailable: ${held.count} more requests answered 503 since the last line`,
        error: held.last,
      })
  }, UNAVAILABLE_SUMMARY_MS).unref()
  app.setErrorHandler((err: Error, _req, reply) => {
    if (err instanceof ApiError) {
      for (const [k, v] of Object.entries(err.headers)) reply.header(k, v)
      return json(reply, err.status, err.issues)
    }
    const status = (err as { statusCode?: number }).statusCode
    if (status !== undefined && status >= 400 && status < 500) {
      const token =
        status === 413
          ? 'request_too_large'
          : status === 415
            ? 'unsupported_media_type'
            : 'bad_request'
      return json(reply, status === 400 ? 406 : status, [{ token, message: err.message }])
    }
    if (uniqueViolation(err))
      return json(reply, 409, [
        {
          token: 'conflict',
          message:
            'another request made or changed the same object at the same time; read it again and retry if still wanted',
        },
      ])
    const away = storeUnavailable(err)
    if (away !== undefined) {
      if (unavailableLog.first(err.message))
        reply.log.warn({ msg: 'database unavailable', error: err.message })
      return json(reply.header('retry-after', '2'), 503, [
        { token: 'database_unavailable', message: away },
      ])
    }
    reply.log.error(err)
    return json(reply, 500, [
      { token: 'internal_error', message: 'the server failed to handle this request; see its log' },
    ])
  })
  app.setNotFoundHandler((req, reply) =>
    json(reply, 404, [{ token: 'not_found', message: `${req.method} ${req.url} does not exist` }]),
  )

  const routes: { method: string; url: string }[] = []
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) if (m !== 'HEAD') routes.push({ method: m, url: r.url })
  })
  const failures = new AuthFailures(opts.authFailuresPerMinute ?? 30)
  const writeFailures = (all: boolean) =>
    recordAuthFailures(ctx.db, failures.takeEnded(all)).catch((e: Error) => app.log.error(e))
  const failureEvents = setInterval(() => void writeFailures(false), FAILURE_EVENTS_MS).unref()
  app.addHook('onClose', async () => {
    clearInterval(failureEvents)
    clearInterval(unavailableSummary)
    await writeFailures(true)
  })
  registerMetrics(app, ctx.db, ctx.policyFeed, (req) => authenticate(ctx.db, req, failures))
  app.get('/api/v2/openapi.json', (_req, reply) => json(reply, 200, openApiDocument(routes)))
  const apiLimit = new PerMinuteLimit(opts.ratePerMinute ?? 500)
  await app.register(
    (api, _opts, done) => {
      api.addHook('onRequest', async (req) => {
        const route = req.routeOptions.url
        if (route === '/api/v2/health' || route === '/api/v2/product_version') return
        // Session login authenticates itself: a password, then a one-time auth token.
        if (route === '/api/v2/login_users/authenticate') return
        if (route === '/api/v2/users/login' && req.headers.authorization?.startsWith('Token '))
          return
        await authenticate(ctx.db, req, failures)
        apiLimit.take(String(req.user?.id))
      })
      // Every query parameter is one the route takes, with a value of its kind (or a 406).
      api.addHook('preValidation', (req, _reply, done) => {
        try {
          checkQuery(req)
          done()
        } catch (e) {
          done(e as Error)
        }
      })
      registerMisc(api, ctx)
      registerOrgSettings(api, ctx)
      registerUsers(api, ctx, failures)
      registerApiKeys(api, ctx)
      registerServiceAccounts(api, ctx)
      registerLabels(api, ctx)
      registerLabelDimensions(api, ctx)
      registerPolicyObjects(api, ctx)
      registerPolicyRules(api, ctx)
      registerServiceBindings(api, ctx)
      registerFirewallSettings(api, ctx)
      registerProvisioning(api, ctx)
      registerWorkloads(api, ctx)
      registerVens(api, ctx)
      registerPairing(api, ctx)
      registerEvents(api, ctx)
      registerTraffic(api, ctx)
      registerHostAnalysis(api, ctx)
      done()
    },
    { prefix: '/api/v2' },
  )
  registerAgentChannel(app, ctx, opts.activationsPerMinute ?? 20)
  registerAgentInstall(app, ctx)
  registerConsoleSession(app, ctx.db, opts.https !== undefined, failures)
  registerConsole(app)
  return app
}
