import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { replyError, ServerClient } from '@palisade/agent'
import type { Command } from 'commander'

interface Bootstrap {
  org_id: number
  api_user: string
  api_secret: string
  ca_cert: string | null
  url: string
}

interface Step {
  table: string
  chain: string
  hook: string
  priority: number
  ours: boolean
  outcome: string
  by?: { index: number; text: string }
}

interface Explanation {
  packet: { path: string; src: string; dst: string; proto: number; dport?: number }
  verdict: string
  decided_by: { table: string; chain: string; index: number; text: string; ours: boolean } | null
  policy_decision: string
  policy_stage: string | null
  rule_href: string | null
  seen_by_palisade: boolean
  reported_as_flow: boolean
  uncertain: boolean
  ruleset_read_at: string | null
  steps: Step[]
}

/** A client of the server's API with the credentials `palisade server` wrote on first start. */
export async function apiClient(dataDir: string): Promise<{ client: ServerClient; org: number }> {
  const file = join(dataDir, 'bootstrap.json')
  let boot: Bootstrap
  try {
    boot = JSON.parse(await readFile(file, 'utf8')) as Bootstrap
  } catch (e) {
    throw new Error(
      `cannot read ${file} (${(e as Error).message}); pass --data-dir of the running server`,
      { cause: e },
    )
  }
  const auth = `Basic ${Buffer.from(`${boot.api_user}:${boot.api_secret}`).toString('base64')}`
  return {
    client: new ServerClient({ url: boot.url, caCertFile: boot.ca_cert }, auth),
    org: boot.org_id,
  }
}

function render(e: Explanation, name: string): string {
  const p = e.packet
  const lines = [
    `${name}: ${p.src} -> ${p.dst} proto ${p.proto}${p.dport !== undefined ? ` port ${p.dport}` : ''} (${p.path === 'in' ? 'inbound' : p.path === 'out' ? 'outbound' : 'forwarded'})`,
    '',
  ]
  for (const s of e.steps) {
    const who = s.ours ? 'palisade' : 'foreign'
    const by = s.by ? `rule ${s.by.index}: ${s.by.text}` : 'chain policy'
    lines.push(
      `  ${s.hook.padEnd(11)} prio ${String(s.priority).padStart(5)}  ${`${s.table} ${s.chain}`.padEnd(40)} ${who.padEnd(8)} ${s.outcome.toUpperCase().padEnd(6)} ${by}`,
    )
  }
  if (e.steps.length === 0) lines.push('  no filter chain on this path: the packet passes')
  lines.push('')
  lines.push(
    `verdict: ${e.verdict}${e.decided_by ? ` by ${e.decided_by.ours ? 'our' : 'a foreign'} rule in ${e.decided_by.table} ${e.decided_by.chain}${e.decided_by.index >= 0 ? ` #${e.decided_by.index}` : ' (policy)'}` : ''}`,
  )
  lines.push(
    `policy decision: ${e.policy_decision}${e.policy_stage ? ` (${e.policy_stage}${e.rule_href ? `, ${e.rule_href}` : ''})` : ''}`,
  )
  lines.push(
    e.seen_by_palisade
      ? `palisade sees it${e.reported_as_flow ? ' and reports it as a flow' : ', but its visibility level does not report it'}`
      : 'palisade never sees it: a foreign rule decided first (no flow is reported)',
  )
  if (e.uncertain)
    lines.push('note: a rule the model cannot evaluate was passed over as not matching')
  lines.push(`ruleset read by the agent at ${e.ruleset_read_at ?? 'unknown'}`)
  return `${lines.join('\n')}\n`
}

export function explainCommand(program: Command): void {
  program
    .command('explain')
    .description(
      'the path a packet takes through every firewall on a workload, which rule decides, and whether Palisade sees it',
    )
    .requiredOption('--workload <name>', 'the workload (its name or hostname)')
    .requiredOption('--src <ip>', 'source address')
    .requiredOption('--dst <ip>', 'destination address')
    .option('--port <n>', 'destination port')
    .option('--proto <name>', 'protocol name or number', 'tcp')
    .option('--data-dir <dir>', "the server's data dir (for bootstrap.json)", './data')
    .option('--json', 'print the server answer as JSON')
    .action(
      async (o: {
        workload: string
        src: string
        dst: string
        port?: string
        proto: string
        dataDir: string
        json?: boolean
      }) => {
        const { client, org } = await apiClient(o.dataDir)
        const list = await client.call('GET', `/api/v2/orgs/${org}/workloads?max_results=100000`)
        if (list.status !== 200) throw new Error(`cannot list workloads: ${replyError(list)}`)
        const matches = (list.body as { href: string; name: string; hostname: string }[]).filter(
          (w) => w.name === o.workload || w.hostname === o.workload,
        )
        if (matches.length !== 1)
          throw new Error(
            matches.length === 0
              ? `no workload is named "${o.workload}"`
              : `${matches.length} workloads are named "${o.workload}"; use the one's hostname`,
          )
        const w = matches[0] as { href: string; name: string }
        const q = new URLSearchParams({
          src: o.src,
          dst: o.dst,
          proto: o.proto,
          ...(o.port !== undefined && { port: o.port }),
        })
        const r = await client.call('GET', `/api/v2${w.href}/explain?${q.toString()}`)
        if (r.status !== 200) throw new Error(replyError(r))
        if (o.json) console.log(JSON.stringify(r.body, null, 2))
        else process.stdout.write(render(r.body as Explanation, w.name))
      },
    )
}
