/**
 * The one-file agent (`npm run package` bundles this into `dist/palisade-agent-linux-*`): the
 * agent's commands only, so it carries neither the server nor anything native.
 */
import { Command } from 'commander'
import { addAgentCommands } from './agent-commands.js'
import { VERSION } from './version.js'

const program = new Command()
  .name('palisade-agent')
  .description('the Palisade host agent: enforce policy on this host and keep it intact')
  .version(VERSION)
  .showHelpAfterError()
addAgentCommands(program)

program.parseAsync(process.argv).catch((e: Error) => {
  console.error(`palisade-agent: ${e.message}`)
  process.exit(1)
})
