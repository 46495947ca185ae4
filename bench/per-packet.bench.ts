/**
 * Per-packet cost of our policy. Rules our chains evaluate for a new connection with 10 and
 * 10,000 peers, from the model and from the kernel's rule counters (the matching rule's
 * position); and new TCP connections per second between two namespaces with a 10,000-peer
 * policy on the server, as a ratio to no rules at all, measured in the same run. The load comes
 * from enough client processes that the client is not what limits the rate (see
 * connection-rate.ts; the scaling without rules is in the output).
 */
import { applyDesired, readHost } from '@palisade/agent'
import type { Backend } from '@palisade/firewall'
import { BACKENDS, compile, findTable, NFT_TABLE, tracePacket } from '@palisade/firewall'
import { LabPeer, resetFirewall } from '@palisade/lab'
import { DEFAULT_FAILSAFE } from '@palisade/model'
import { inRateLab, rateSpread, ratioSpread } from './connection-rate.js'
import { policyWithPeers } from './peers.js'

const PORT = 8080
const RATE_SECONDS = Number(process.env.PALISADE_BENCH_RATE_SECONDS ?? 3)
const ROUNDS = 5

export function run(): Promise<Record<string, unknown>> {
  return inRateLab(PORT, RATE_SECONDS, ROUNDS, async ({ server: s, client: c, rate: measure }) => {
    const probe = LabPeer.start(c.ns)
    const rulesEvaluated: Record<string, unknown> = {}
    try {
      for (const n of [10, 10_000]) {
        await resetFirewall(s.run)
        const desired = compile(policyWithPeers(n, 'coexistence_primary', [`${c.ip4}/32`]), {
          backend: 'nftables',
          failsafe: DEFAULT_FAILSAFE,
        })
        await applyDesired(s.run, desired, (await readHost(s.run)).ruleset, { modeChanged: true })
        const live = (await readHost(s.run)).ruleset
        const model = tracePacket(live, {
          path: 'in',
          family: 4,
          src: c.ip4,
          dst: s.ip4,
          proto: 6,
          sport: 40000,
          dport: PORT,
          iif: 'eth0',
          ct: 'new',
        })
        const [outcome] = await probe.probe([{ proto: 'tcp', host: s.ip4, port: PORT }], 1000)
        const after = (await readHost(s.run)).ruleset
        const input = findTable(after, 'nft', 'inet', NFT_TABLE)?.chains.find(
          (ch) => ch.name === 'input',
        )
        // The first packet (SYN) is counted by the rule that accepted it; later ones by rule 0.
        const matched = (input?.rules ?? [])
          .map((r, i) => ((r.counter?.packets ?? 0) > 0 ? i : -1))
          .filter((i) => i >= 0)
        rulesEvaluated[`peers${n}`] = {
          model: model.ourRulesEvaluated,
          kernel: Math.max(...matched) + 1,
          connection: outcome,
        }
      }
    } finally {
      await probe.stop()
    }
    const rate = async () => (await measure()).perSecond
    // Interleaved rounds, so drift in the machine's load hits every configuration alike.
    const samples: Record<string, number[]> = { none: [] }
    for (let round = 0; round < ROUNDS; round++) {
      await resetFirewall(s.run)
      samples.none?.push(await rate())
      for (const backend of BACKENDS as readonly Backend[]) {
        await resetFirewall(s.run)
        const desired = compile(policyWithPeers(10_000, 'coexistence_primary', [`${c.ip4}/32`]), {
          backend,
          failsafe: DEFAULT_FAILSAFE,
        })
        await applyDesired(s.run, desired, (await readHost(s.run)).ruleset, { modeChanged: true })
        ;(samples[backend] ??= []).push(await rate())
      }
    }
    await resetFirewall(s.run)
    const none = samples.none ?? []
    const rates: Record<string, unknown> = { noRulesPerSecond: rateSpread(none) }
    for (const backend of BACKENDS) {
      const b = samples[backend] ?? []
      rates[backend] = {
        perSecond: rateSpread(b),
        // each round against the no-rules rate of the same round
        ratioToNoRules: ratioSpread(b.map((x, i) => x / (none[i] ?? NaN))),
      }
    }
    return {
      rulesEvaluatedPerNewConnection: rulesEvaluated,
      connectionsWith10000Peers: rates,
      rateSeconds: RATE_SECONDS,
      rounds: ROUNDS,
    }
  })
}
