import type { AgentStatus } from '@palisade/agent'
import {
  activate,
  DEFAULT_CONFIG,
  DEFAULT_STATE_DIR,
  managementTcpPorts,
  readJson,
  restoreFirewall,
  restartProcess,
  RestartRequired,
  runAgent,
  runLocal,
  runningPid,
  statePaths,
} from '@palisade/agent'
import type { RestoreMode } from '@palisade/protocol'
import { RESTORE_MODES } from '@palisade/protocol'
import type { Backend } from '@palisade/firewall'
import { BACKENDS } from '@palisade/firewall'
import type { Command } from 'commander'
import { Option } from 'commander'
import { rm, writeFile } from 'node:fs/promises'
import { setFlagsFromString } from 'node:v8'
import { VERSION } from './version.js'

const log = (line: Record<string, unknown>) =>
  console.log(JSON.stringify({ time: new Date().toISOString(), ...line }))

const stateDirOption = () =>
  new Option('--state-dir <dir>', 'agent state directory').default(DEFAULT_STATE_DIR)

async function waitForExit(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    try {
      process.kill(pid, 0)
    } catch {
      return true
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return false
}

function describe(s: AgentStatus, alive: boolean): string {
  const e = s.enforcement
  const lines = [
    `agent:       ${alive ? `running (pid ${s.pid})` : 'not running'}, ${s.suspended ? 'SUSPENDED' : 'enforcing'}`,
    `health:      ${e.health}${e.reason ? ` (${e.reason})` : ''}`,
    `backend:     ${s.backend} (${s.backendReason})`,
    ...s.warnings.map((w) => `warning:     ${w}`),
    `host:        ${s.os}`,
    `policy:      ${s.policy ? `version ${s.policy.version}, ${s.policy.enforcementMode}, ${s.policy.mode} (from ${s.policy.source})` : 'none yet'}`,
    `applied:     ${e.applied ? `version ${e.applied.version} at ${e.applied.at} (${e.applied.plan} apply, ${e.applied.ms} ms), verified` : 'nothing yet'}`,
    `tampering:   ${e.tampering.repairs === 0 ? 'none seen' : `${e.tampering.repairs} repaired, last ${e.tampering.lastAt}${e.tampering.lastBy ? ` by ${e.tampering.lastBy}` : ''}${e.tampering.condition === 'ongoing' ? ' — ONGOING: another process keeps changing our rules' : ''}`}`,
    `flows:       ${!s.flows || s.flows.level === 'flow_off' ? 'not collected (flow_off)' : `${s.flows.level}: ${s.flows.packets} connections logged, ${s.flows.summaries} summaries; log reader ${s.flows.readers.log}; confirmations ${s.flows.readers.confirmations}`}`,
    `firewalls:   ${s.survey.firewalls.length === 0 ? 'no other firewall found' : s.survey.firewalls.map((f) => `${f.kind}${f.zones ? ` (zones ${f.zones.map((z) => z.zone).join(', ')})` : ''}`).join(', ')}`,
    ...s.survey.recommendations.map(
      (r) => `${r.severity === 'warning' ? 'WARNING' : 'advice'}:     ${r.message}`,
    ),
  ]
  return lines.join('\n')
}

/** `palisade agent ...`: the agent's commands under the full command. */
export function agentCommands(program: Command): void {
  addAgentCommands(
    program
      .command('agent')
      .description('the host agent: enforce policy on this host and keep it intact'),
  )
}

/** The agent's commands (activate, run, status, ...) added to `agent`: shared with the one-file agent. */
export function addAgentCommands(agent: Command): void {
  agent
    .command('activate')
    .description('pair this host with a policy server using an activation code')
    .requiredOption(
      '--management-server <host:port>',
      'the policy server; a cluster: a DNS name with several addresses, or HOST:PORT,HOST:PORT',
    )
    .requiredOption(
      '--activation-code <code>',
      'from a pairing profile (POST {profile}/pairing_key)',
    )
    .option(
      '--ca-cert <file>',
      "the server's CA certificate (bootstrap.json names it); pinned from then on",
      'ca.crt',
    )
    .option('--hostname <name>', "the workload's name (default: this machine's hostname)")
    .addOption(stateDirOption())
    .addOption(new Option('--backend <backend>', 'firewall backend').choices(['auto', ...BACKENDS]))
    .action(
      async (opts: {
        managementServer: string
        activationCode: string
        caCert: string
        stateDir: string
        hostname?: string
        backend?: Backend | 'auto'
      }) => {
        const r = await activate({
          managementServer: opts.managementServer,
          activationCode: opts.activationCode,
          caCert: opts.caCert,
          stateDir: opts.stateDir,
          run: runLocal,
          version: VERSION,
          ...(opts.backend && { backend: opts.backend }),
          ...(opts.hostname && { hostname: opts.hostname }),
        })
        console.log(
          `paired as agent ${r.agentId} (workload ${r.workloadHref}); start it with \`palisade agent run --state-dir ${opts.stateDir}\``,
        )
      },
    )

  agent
    .command('run')
    .description('run the agent in the foreground')
    .addOption(stateDirOption())
    .option(
      '--policy-file <file>',
      'standalone: enforce this local host policy file (JSON) and follow its changes',
    )
    .addOption(new Option('--backend <backend>', 'firewall backend').choices(['auto', ...BACKENDS]))
    .action(async (opts: { stateDir: string; policyFile?: string; backend?: Backend | 'auto' }) => {
      // The agent lives long beside what the host really runs, and its work comes in bursts
      // (a read of 100,000 set elements): a heap kept small halves its peak resident memory
      // (215 to 120 MB at 100,000 peers) for no measurable cost in its repairs.
      setFlagsFromString('--optimize-for-size')
      const agentHandle = await runAgent({
        stateDir: opts.stateDir,
        run: runLocal,
        log,
        version: VERSION,
        // Unpaired by the server: the agent cleaned up and has nothing left to do.
        onUnpaired: () => process.exit(0),
        // Upgraded or rolled back: the executable now holds the build to run.
        onRestart: (why) => restartProcess(log, why),
        ...(opts.policyFile && { policyFile: opts.policyFile }),
        ...(opts.backend && { backend: opts.backend }),
      }).catch((e: Error) => {
        if (e instanceof RestartRequired) restartProcess(log, e.message)
        throw e
      })
      const shutdown = (signal: string) => {
        log({ msg: 'stopping; our rules stay in place', signal })
        void agentHandle.stop().then(() => process.exit(0))
      }
      process.once('SIGTERM', () => shutdown('SIGTERM'))
      process.once('SIGINT', () => shutdown('SIGINT'))
    })

  agent
    .command('status')
    .description('show what the agent enforces, its backend and health, and the firewalls it found')
    .addOption(stateDirOption())
    .option('--json', 'print the status as JSON')
    .action(async (opts: { stateDir: string; json?: boolean }) => {
      const p = statePaths(opts.stateDir)
      const s = await readJson<AgentStatus>(p.status)
      if (!s) {
        console.error(
          `no agent status in ${opts.stateDir}: the agent has not run there; start it with \`palisade agent run --state-dir ${opts.stateDir}\``,
        )
        process.exitCode = 3
        return
      }
      const alive = (await runningPid(p)) === s.pid
      console.log(
        opts.json ? JSON.stringify({ ...s, running: alive }, null, 2) : describe(s, alive),
      )
      if (!alive || s.enforcement.health === 'unhealthy') process.exitCode = 1
    })

  for (const [name, flag] of [
    ['suspend', true],
    ['unsuspend', false],
  ] as const) {
    agent
      .command(name)
      .description(
        flag
          ? 'stop enforcing: remove our rules until unsuspended'
          : 'enforce policy again after a suspend',
      )
      .addOption(stateDirOption())
      .action(async (opts: { stateDir: string }) => {
        const p = statePaths(opts.stateDir)
        if (flag) await writeFile(p.suspended, `${new Date().toISOString()}\n`, { mode: 0o600 })
        else await rm(p.suspended, { force: true })
        const pid = await runningPid(p)
        if (pid === undefined) {
          console.error(
            `no agent is running on ${opts.stateDir}; the change takes effect when it starts`,
          )
          process.exitCode = 1
          return
        }
        process.kill(pid, 'SIGHUP')
        console.log(
          flag
            ? 'agent suspended: our rules are being removed'
            : 'agent unsuspended: policy is being enforced again',
        )
      })
  }

  agent
    .command('unpair')
    .description(
      'stop the agent, remove our rules, leave the firewall as chosen, and forget this host',
    )
    .addOption(stateDirOption())
    .addOption(
      new Option(
        '--firewall-restore <mode>',
        'default: remove our rules only; saved: put back the firewall found before pairing; open: no rules; closed: only management ports',
      )
        .choices(RESTORE_MODES)
        .default('default'),
    )
    .action(async (opts: { stateDir: string; firewallRestore: RestoreMode }) => {
      const p = statePaths(opts.stateDir)
      const status = await readJson<AgentStatus>(p.status)
      const config = { ...DEFAULT_CONFIG, ...(await readJson<typeof DEFAULT_CONFIG>(p.config)) }
      if (!status) {
        console.error(`no agent state in ${opts.stateDir}: nothing to unpair`)
        process.exitCode = 3
        return
      }
      const pid = await runningPid(p)
      if (pid !== undefined) {
        process.kill(pid, 'SIGTERM')
        if (!(await waitForExit(pid, 10_000)))
          throw new Error(`the agent (pid ${pid}) did not stop within 10 s; nothing was changed`)
      }
      await restoreFirewall(
        runLocal,
        status.backend,
        opts.firewallRestore,
        p.saved,
        managementTcpPorts(config),
      )
      await rm(p.dir, { recursive: true, force: true })
      console.log(
        `unpaired: our rules are removed (${opts.firewallRestore}); ${opts.stateDir} is deleted`,
      )
    })
}
