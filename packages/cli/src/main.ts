import {
  compile,
  BACKENDS,
  renderIpsetStage,
  renderIpsetSwap,
  renderIptablesRestore,
  renderNftScript,
} from '@palisade/firewall'
import type { Backend } from '@palisade/firewall'
import { DEFAULT_FAILSAFE, hostPolicyFromLocalFile } from '@palisade/model'
import { Command, Option } from 'commander'
import { readFile } from 'node:fs/promises'
import { agentCommands } from './agent-commands.js'
import { demoCommand } from './demo-command.js'
import { explainCommand } from './explain-command.js'
import { serverCommand } from './server-command.js'
import { VERSION } from './version.js'

const program = new Command()
program
  .name('palisade')
  .description(
    'Host-firewall micro-segmentation that coexists with the firewalls already on a host',
  )
  .version(VERSION)
  .showHelpAfterError()

program
  .command('compile')
  .description('print the ruleset a host policy file compiles to, without touching the kernel')
  .requiredOption(
    '--policy-file <file>',
    'local host policy file (JSON; see docs/host-policy-file.md)',
  )
  .addOption(
    new Option('--backend <backend>', 'firewall backend').choices(BACKENDS).default('nftables'),
  )
  .option('--json', 'print the compiled intermediate form as JSON')
  .action(async (opts: { policyFile: string; backend: Backend; json?: boolean }) => {
    const policy = hostPolicyFromLocalFile(
      JSON.parse(await readFile(opts.policyFile, 'utf8')) as unknown,
    )
    const desired = compile(policy, { backend: opts.backend, failsafe: DEFAULT_FAILSAFE })
    if (opts.json) console.log(JSON.stringify(desired, null, 2))
    else if (opts.backend === 'nftables') process.stdout.write(renderNftScript(desired))
    else {
      const ctx = { hooksFound: [], modeChanged: true, foreignToDelete: [], staleChains: [] }
      process.stdout.write(
        `# ipset restore\n${renderIpsetStage(desired.ipsets, new Set())}# iptables-restore --noflush\n${renderIptablesRestore(desired, 'ip', ctx)}# ip6tables-restore --noflush\n${renderIptablesRestore(desired, 'ip6', ctx)}${renderIpsetSwap(desired.ipsets, new Set())}`,
      )
    }
  })

serverCommand(program)
agentCommands(program)
explainCommand(program)
demoCommand(program)

program.parseAsync(process.argv).catch((e: Error) => {
  console.error(`palisade: ${e.message}`)
  process.exit(1)
})
