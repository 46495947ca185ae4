/**
 * A policy server the test controls, speaking the agent protocol (@palisade/protocol) over a
 * unix socket in the test process; a lab peer exposes it as a TCP port in a namespace. The
 * test answers each policy request and each status report, and sees everything it was sent.
 */
import type { AgentEvent, StatusReport } from '@palisade/protocol'
import { eventsRoute, policyRoute, statusRoute } from '@palisade/protocol'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { createServer } from 'node:http'

export class FakePolicyServer {
  /** Every request body received, as sent. */
  readonly bodies: string[] = []
  /** Status reports, with the number of policy answers served when each arrived. */
  readonly reports: { at: number; report: StatusReport }[] = []
  readonly events: AgentEvent[] = []
  /** Policy answers served so far. */
  served = 0
  /** The HTTP status a status report gets (default 204: stored). */
  statusReply: (r: StatusReport) => number = () => 204
  readonly #answers: ((res: ServerResponse) => void)[] = []
  readonly #waiting: ServerResponse[] = []
  readonly #server: Server

  constructor(private readonly agentId: string) {
    this.#server = createServer((req, res) => void this.#handle(req, res))
  }

  listen(socketPath: string): Promise<void> {
    return new Promise((resolve) => this.#server.listen(socketPath, resolve))
  }

  close(): Promise<void> {
    this.#server.closeAllConnections()
    return new Promise((resolve) => this.#server.close(() => resolve()))
  }

  /** Answers the next policy request (now, if one waits) with `a`. */
  answer(a: (res: ServerResponse) => void): void {
    const waiting = this.#waiting.shift()
    if (waiting) this.#serve(waiting, a)
    else this.#answers.push(a)
  }

  /** A policy reply: `text` is the policy's JSON, sent as it is. */
  policy(hash: string, text: string): void {
    this.answer((res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(`{"hash":${JSON.stringify(hash)},"policy":${text}}`)
    })
  }

  /** The agent's policy is current. */
  unchanged(): void {
    this.answer((res) => res.writeHead(304).end())
  }

  /** The first report received after answer number `served` that satisfies `ok`. */
  reportAfter(served: number, ok: (r: StatusReport) => boolean): StatusReport | undefined {
    return this.reports.find((r) => r.at >= served && ok(r.report))?.report
  }

  #serve(res: ServerResponse, a: (res: ServerResponse) => void): void {
    this.served++
    a(res)
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    if (req.method === 'GET' && path === policyRoute(this.agentId)) {
      const a = this.#answers.shift()
      if (a) this.#serve(res, a)
      else this.#waiting.push(res)
      return
    }
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const text = Buffer.concat(chunks).toString()
    this.bodies.push(text)
    if (path === statusRoute(this.agentId)) {
      const report = JSON.parse(text) as StatusReport
      this.reports.push({ at: this.served, report })
      const status = this.statusReply(report)
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(status === 204 ? undefined : '[{"token":"unavailable","message":"not now"}]')
      return
    }
    if (path === eventsRoute(this.agentId)) this.events.push(...(JSON.parse(text) as AgentEvent[]))
    res.writeHead(204).end()
  }
}
