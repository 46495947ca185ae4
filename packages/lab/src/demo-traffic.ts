import type { Runner } from '@palisade/agent'
import { runChecked } from '@palisade/agent'
import { NFT_TABLE, IPT_PREFIX } from '@palisade/firewall'
import type { Backend } from '@palisade/firewall'
import type { DemoFlow } from './demo-estate.js'
import type { LabPeer } from './peer.js'

/** What the demo saw of one connection the last time it tried it. */
export interface FlowOutcome {
  readonly flow: DemoFlow
  readonly outcome: string
  readonly asExpected: boolean
}

/**
 * Tries every connection of the estate now and then, from a peer in its source namespace, so
 * that flows keep arriving at the server; records whether each did what the estate expects.
 */
export class DemoTraffic {
  readonly #last = new Map<DemoFlow, FlowOutcome>()
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined

  constructor(
    private readonly flows: readonly DemoFlow[],
    private readonly peers: ReadonlyMap<string, LabPeer>,
    private readonly ip4: (host: string) => string,
  ) {}

  /** One round: every connection once, the sources in parallel. */
  async round(): Promise<FlowOutcome[]> {
    const bySource = new Map<string, DemoFlow[]>()
    for (const f of this.flows) bySource.set(f.from, [...(bySource.get(f.from) ?? []), f])
    await Promise.all(
      [...bySource].map(async ([from, flows]) => {
        const peer = this.peers.get(from)
        if (!peer) return
        const got = await peer.probe(
          flows.map((f) => ({ proto: 'tcp' as const, host: this.ip4(f.to), port: f.port })),
          1000,
        )
        flows.forEach((f, i) => {
          const outcome = got[i] ?? 'error'
          this.#last.set(f, { flow: f, outcome, asExpected: (outcome === 'open') === f.open })
        })
      }),
    )
    return this.outcomes()
  }

  outcomes(): FlowOutcome[] {
    return this.flows.flatMap((f) => this.#last.get(f) ?? [])
  }

  /** Keeps going every `everyMs` until stopped. */
  start(everyMs: number, onError: (e: Error) => void): void {
    const tick = () => {
      this.#running = this.round().then(
        () => undefined,
        (e: Error) => onError(e),
      )
      void this.#running.then(() => {
        if (this.#timer) this.#timer = setTimeout(tick, everyMs)
      })
    }
    this.#timer = setTimeout(tick, 0)
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    await this.#running
  }
}

/**
 * Tampers with a host the way a careless admin would: a rule added at the top of our input
 * chain (it opens an unused port, so the estate's connections keep their outcome while the
 * agent repairs and reports it). Returns what was done.
 */
export async function tamper(run: Runner, backend: Backend): Promise<string> {
  const port = '65000'
  if (backend === 'nftables') {
    await runChecked(run, 'nft', [
      'insert',
      'rule',
      'inet',
      NFT_TABLE,
      'input',
      'tcp',
      'dport',
      port,
      'accept',
    ])
    return `nft insert rule inet ${NFT_TABLE} input tcp dport ${port} accept`
  }
  const tool = backend === 'iptables-nft' ? 'iptables-nft' : 'iptables-legacy'
  const args = ['-I', `${IPT_PREFIX}INPUT`, '1', '-p', 'tcp', '--dport', port, '-j', 'ACCEPT']
  await runChecked(run, tool, args)
  return `${tool} ${args.join(' ')}`
}
