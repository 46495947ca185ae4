import type { HostRule } from '@palisade/model'
import { computeHostPolicy } from '@palisade/model'
import { useState } from 'preact/hooks'
import { call, messagesFor, nameOfHref, O, otherMessages } from '../api.js'
import { useLive } from '../hooks.js'
import { decisionName } from '../names.js'
import { loadLabels, loadPolicy, loadWorkloads } from '../policy-data.js'
import { draftHref, snapshotOf } from '../policy-snapshot.js'
import type { Actor } from '../policy-text.js'
import { addressesText, modelPortText, sideText } from '../policy-text.js'
import { Errors, TableHead, TextField, when } from '../ui.js'
import type { Workload } from './workloads.js'
import { idOf } from './workloads.js'

const ACTION_TEXT = { override_deny: 'Override deny', allow: 'Allow', deny: 'Deny' } as const

interface RuleDoc {
  href: string
  consumers: Actor[]
  providers: Actor[]
}

/** What happens to everything no rule names, by enforcement mode (spec section 2). */
const DEFAULT_TEXT: Record<string, string> = {
  full: 'Everything no rule allows is blocked.',
  selective: 'Only deny rules block; everything else is allowed and reported.',
  visibility_only:
    'Nothing is blocked; what a rule would block is reported as potentially blocked.',
  idle: 'Idle: the agent programs nothing, so no rule applies on the host.',
}

/**
 * The rules that reach a workload, inbound and outbound: the active policy computed for this
 * host with the model the server uses, so what is listed is what its agent is sent.
 */
export function WorkloadRules({ w }: { w: Workload }) {
  const live = useLive(
    async () => {
      const [docs, labels, workloads] = await Promise.all([
        loadPolicy('active'),
        loadLabels(),
        loadWorkloads<Workload>(),
      ])
      const policy = computeHostPolicy(snapshotOf(docs, labels, workloads), w.href)
      const rules = new Map<string, { rule: RuleDoc; ruleSet: string }>()
      for (const rs of docs.ruleSets)
        for (const r of [
          ...((rs.rules as RuleDoc[] | undefined) ?? []),
          ...((rs.deny_rules as RuleDoc[] | undefined) ?? []),
        ])
          rules.set(draftHref(r.href), { rule: r, ruleSet: String(rs.name) })
      return { policy, rules }
    },
    10_000,
    [w.href, w.labels.map((l) => l.href).join(), w.enforcement_mode],
  )
  if (!live.data)
    return live.error ? (
      <Errors messages={otherMessages(live.error, [])} />
    ) : (
      <p class="loading" role="status">
        Loading…
      </p>
    )
  const { policy, rules } = live.data
  const table = (direction: 'inbound' | 'outbound') => {
    const list = policy.rules.filter((r) => r.direction === direction)
    const title = direction === 'inbound' ? 'Inbound rules' : 'Outbound rules'
    return (
      <>
        <h3>{title}</h3>
        {list.length === 0 ? (
          <p class="empty">
            No rule reaches {w.name} {direction === 'inbound' ? 'as a destination' : 'as a source'}.
          </p>
        ) : (
          <table aria-label={title}>
            <TableHead
              columns={[
                'Action',
                direction === 'inbound' ? 'From (sources)' : 'To (destinations)',
                'Addresses',
                'Services',
                'Rule set',
              ]}
            />
            <tbody>
              {list.map((r) => (
                <RuleRow key={r.key} r={r} doc={rules.get(r.ruleHref)} />
              ))}
            </tbody>
          </table>
        )}
      </>
    )
  }
  return (
    <div class="workload-rules">
      <p class="hint">
        From the active policy. {DEFAULT_TEXT[w.enforcement_mode] ?? ''}
        {!w.agent && ' This workload has no agent: these rules are not enforced on it.'}
      </p>
      {table('inbound')}
      {table('outbound')}
    </div>
  )
}

function RuleRow({ r, doc }: { r: HostRule; doc?: { rule: RuleDoc; ruleSet: string } }) {
  const side = doc && (r.direction === 'inbound' ? doc.rule.consumers : doc.rule.providers)
  return (
    <tr class={`rule-${r.action.replace('_', '-')}`}>
      <td>{ACTION_TEXT[r.action]}</td>
      <td>{side ? sideText(side, nameOfHref) : 'enforcement boundary'}</td>
      <td>{addressesText(r.peers)}</td>
      <td>{r.services.map(modelPortText).join(', ')}</td>
      <td>
        <a href="#/policy">{doc?.ruleSet ?? 'enforcement boundaries'}</a>
      </td>
    </tr>
  )
}

interface Explained {
  packet: { src: string; dst: string; proto: number; dport?: number; path: string }
  ruleset_read_at: string | null
  verdict: string
  decided_by: { table: string; chain: string; index: number; text: string; ours: boolean } | null
  policy_decision: string
  policy_stage: string | null
  rule_href: string | null
  seen_by_palisade: boolean
  reported_as_flow: boolean
  uncertain: boolean
  steps: {
    table: string
    chain: string
    hook: string
    priority: number
    ours: boolean
    outcome: string
    by?: { text: string; index: number }
  }[]
}

const VERDICT_TEXT: Record<string, string> = {
  accept: 'Accepted',
  drop: 'Dropped',
  reject: 'Rejected',
}

/**
 * A chosen packet through every firewall on the host (the agent's live ruleset): which rule
 * decides, what Palisade's policy decides, and whether Palisade sees and reports it.
 */
export function ExplainForm({ w }: { w: Workload }) {
  const own = w.interfaces.map((i) => i.address)
  const [direction, setDirection] = useState<'in' | 'out'>('in')
  const [hostAddress, setHostAddress] = useState(own[0] ?? '')
  const [peer, setPeer] = useState('')
  const [proto, setProto] = useState('tcp')
  const [port, setPort] = useState('443')
  const [result, setResult] = useState<Explained>()
  const [error, setError] = useState<unknown>()
  const [busy, setBusy] = useState(false)
  if (!w.agent)
    return <p class="empty">No agent: there is no host firewall to trace a packet through.</p>
  const peerPath = direction === 'in' ? '$.src' : '$.dst'
  const submit = async (e: Event) => {
    e.preventDefault()
    setBusy(true)
    setError(undefined)
    try {
      const q = new URLSearchParams({
        src: direction === 'in' ? peer.trim() : hostAddress,
        dst: direction === 'in' ? hostAddress : peer.trim(),
        proto,
        ...(port.trim() && (proto === 'tcp' || proto === 'udp') && { port: port.trim() }),
      })
      setResult(await call<Explained>('GET', `${O}/workloads/${idOf(w.href)}/explain?${q}`))
    } catch (err) {
      setResult(undefined)
      setError(err)
    } finally {
      setBusy(false)
    }
  }
  return (
    <div>
      <form class="filters" onSubmit={(e) => void submit(e)} aria-label="Explain a packet">
        <div>
          <label for="ex-dir">Direction</label>
          <select
            id="ex-dir"
            value={direction}
            onChange={(e) => setDirection((e.target as HTMLSelectElement).value as 'in' | 'out')}
          >
            <option value="in">Inbound: from a peer to {w.name}</option>
            <option value="out">Outbound: from {w.name} to a peer</option>
          </select>
        </div>
        {own.length > 1 && (
          <div>
            <label for="ex-host">Host address</label>
            <select
              id="ex-host"
              value={hostAddress}
              onChange={(e) => setHostAddress((e.target as HTMLSelectElement).value)}
            >
              {own.map((a) => (
                <option key={a}>{a}</option>
              ))}
            </select>
          </div>
        )}
        <div>
          <TextField
            id="ex-peer"
            label="Peer address"
            placeholder="198.18.0.30"
            value={peer}
            onValue={setPeer}
            errors={messagesFor(error, peerPath)}
          />
        </div>
        <div>
          <label for="ex-proto">Protocol</label>
          <select
            id="ex-proto"
            value={proto}
            onChange={(e) => setProto((e.target as HTMLSelectElement).value)}
          >
            {['tcp', 'udp', 'icmp', 'icmpv6'].map((p) => (
              <option key={p}>{p}</option>
            ))}
          </select>
        </div>
        {(proto === 'tcp' || proto === 'udp') && (
          <div>
            <TextField
              id="ex-port"
              label="Port"
              value={port}
              onValue={setPort}
              errors={messagesFor(error, '$.port')}
            />
          </div>
        )}
        <button type="submit" disabled={busy}>
          {busy ? 'Explaining…' : 'Explain'}
        </button>
      </form>
      <Errors messages={otherMessages(error, [peerPath, '$.port'])} />
      {result && <Explanation r={result} />}
    </div>
  )
}

function Explanation({ r }: { r: Explained }) {
  return (
    <section class="explanation" aria-label="Explanation">
      <p>
        <strong class={`verdict ${r.verdict}`}>{VERDICT_TEXT[r.verdict] ?? r.verdict}</strong>
        {r.decided_by
          ? ` by ${r.decided_by.ours ? 'Palisade' : 'a foreign rule'}: ${r.decided_by.table} ${r.decided_by.chain}${r.decided_by.index >= 0 ? ` #${r.decided_by.index}` : ''}`
          : ''}
        {r.uncertain && <span class="tag warn">uncertain: a rule could not be evaluated</span>}
      </p>
      {r.decided_by && <code class="rule-text">{r.decided_by.text}</code>}
      <dl class="facts">
        <dt>Palisade&apos;s policy</dt>
        <dd>
          <span class={`decision ${r.policy_decision}`}>{decisionName(r.policy_decision)}</span>
          {r.policy_stage && ` (${r.policy_stage.replace(/_/g, ' ')})`}
          {r.rule_href && ` by rule ${nameOfHref(r.rule_href) ?? r.rule_href}`}
        </dd>
        <dt>Seen by Palisade</dt>
        <dd>{r.seen_by_palisade ? 'Yes' : 'No: a rule before Palisade’s chains decided it'}</dd>
        <dt>Reported as a flow</dt>
        <dd>{r.reported_as_flow ? 'Yes' : 'No'}</dd>
        <dt>Ruleset read</dt>
        <dd>{when(r.ruleset_read_at)}</dd>
      </dl>
      <table aria-label="Packet path">
        <TableHead columns={['Hook', 'Table and chain', 'Priority', 'Outcome', 'Decided by']} />
        <tbody>
          {r.steps.map((s, i) => (
            <tr key={i} class={s.ours ? 'ours' : undefined}>
              <td>{s.hook}</td>
              <td>
                {s.table} {s.chain}
                {s.ours && <span class="tag">Palisade</span>}
              </td>
              <td>{s.priority}</td>
              <td>{VERDICT_TEXT[s.outcome] ?? s.outcome}</td>
              <td>{s.by ? <code>{s.by.text}</code> : 'chain policy'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  )
}
