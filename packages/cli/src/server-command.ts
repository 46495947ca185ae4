import type { Command } from 'commander'
import { InvalidArgumentError, Option } from 'commander'

const log = (line: Record<string, unknown>) =>
  console.log(JSON.stringify({ time: new Date().toISOString(), ...line }))

function positive(text: string): number {
  const n = Number(text)
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a number above 0')
  return n
}

export function serverCommand(program: Command): void {
  program
    .command('server')
    .description('run the policy server (REST API /api/v2, agent channel) in the foreground')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8443')
    .option('--data-dir <dir>', 'where the database, TLS files and bootstrap.json live', './data')
    .option('--database <url>', 'postgres://... for PostgreSQL (default: SQLite in the data dir)')
    .addOption(
      new Option(
        '--tls <mode>',
        'auto: a CA and certificate are made in the data dir on first start',
      )
        .choices(['auto', 'off'])
        .default('auto'),
    )
    .option(
      '--tls-cert <file>',
      'the server certificate (PEM), instead of one made (with --tls-key, --tls-ca)',
    )
    .option('--tls-key <file>', "the server certificate's private key (PEM)")
    .option('--tls-ca <file>', 'the CA that issued --tls-cert: the one agents pin')
    .option(
      '--cluster-secret-file <file>',
      'servers sharing a PostgreSQL database: the same secret (mode 0600) on each; the CA is kept in the database, its key sealed with it',
    )
    .option('--flow-retention-days <n>', 'flow summaries older than this are deleted', positive, 30)
    .option(
      '--agent-dir <dir>',
      'the agent package to offer at /agent/install.sh (default: dist/ of this repository, from `npm run package`)',
    )
    .option(
      '--flow-max-rows <n>',
      'at most this many flow summaries are kept',
      positive,
      10_000_000,
    )
    .action(
      async (opts: {
        listen: string
        dataDir: string
        database?: string
        tls: 'auto' | 'off'
        flowRetentionDays: number
        flowMaxRows: number
        agentDir?: string
        tlsCert?: string
        tlsKey?: string
        tlsCa?: string
        clusterSecretFile?: string
      }) => {
        const files = [opts.tlsCert, opts.tlsKey, opts.tlsCa]
        if (files.some(Boolean) && !files.every(Boolean))
          throw new Error('--tls-cert, --tls-key and --tls-ca go together: give all three')
        if (files.some(Boolean) && opts.tls === 'off')
          throw new Error('--tls off serves plain HTTP: it takes no --tls-cert')
        // Loaded here: the other commands (the agent's above all) start without the server's stack.
        const { logUnhandledRejections, startServer } = await import('@palisade/server')
        logUnhandledRejections(process, log)
        const server = await startServer({
          listen: opts.listen,
          dataDir: opts.dataDir,
          tls: opts.tls,
          log,
          ...(opts.database && { database: opts.database }),
          ...(opts.agentDir && { agentDir: opts.agentDir }),
          ...(opts.tlsCert &&
            opts.tlsKey &&
            opts.tlsCa && { tlsFiles: { cert: opts.tlsCert, key: opts.tlsKey, ca: opts.tlsCa } }),
          ...(opts.clusterSecretFile && { clusterSecretFile: opts.clusterSecretFile }),
          flowRetention: { maxAgeDays: opts.flowRetentionDays, maxRows: opts.flowMaxRows },
        })
        const stop = (signal: string) => {
          log({ msg: 'stopping', signal })
          void server.close().then(() => process.exit(0))
        }
        process.once('SIGTERM', () => stop('SIGTERM'))
        process.once('SIGINT', () => stop('SIGINT'))
      },
    )
}
