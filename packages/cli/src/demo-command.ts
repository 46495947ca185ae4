import type { HostView } from '@palisade/lab'
import type { Demo } from '@palisade/lab'
import type { Command } from 'commander'
import { InvalidArgumentError } from 'commander'

const whole = (min: number, max: number) => (text: string) => {
  const n = Number(text)
  if (!Number.isInteger(n) || n < min || n > max)
    throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`)
  return n
}

const pad = (s: string, n: number) => s.padEnd(n)
const time = (iso: string) => new Date(iso).toLocaleTimeString()

/** One line per host, and one for the traffic. */
function statusBlock(views: readonly HostView[], demo: Demo): string[] {
  const o = demo.outcomes()
  const unexpected = o.filter((x) => !x.asExpected)
  return [
    `${pad('host', 9)}${pad('backend', 17)}${pad('enforcement', 17)}${pad('mode', 25)}${pad('sync', 10)}repairs`,
    ...views.map(
      (v) =>
        `${pad(v.name, 9)}${pad(v.backend, 17)}${pad(v.enforcement, 17)}${pad(v.mode, 25)}${pad(v.sync, 10)}${v.repairs === 0 ? 'none' : `${v.repairs}, last at ${time(v.lastRepair ?? '')}`}`,
    ),
    `traffic: ${o.length} connections tried every 3 s, ${o.filter((x) => x.outcome === 'open').length} open, ${o.length - unexpected.length} as the policy and the foreign rules say${unexpected.length > 0 ? `; UNEXPECTED: ${unexpected.map((x) => `${x.flow.from} -> ${x.flow.to}:${x.flow.port} ${x.outcome}`).join(', ')}` : ''}`,
  ]
}

export function demoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      "a live estate in network namespaces on this machine: a policy server, hosts on every backend and in every mode beside the firewalls they meet in the field, traffic, the odd tampering (needs root; this machine's own firewall is never touched)",
    )
    .option(
      '--hosts <n>',
      'how many hosts (6 show every backend, mode and foreign firewall; more repeat them)',
      whole(1, 100),
      6,
    )
    .option(
      '--data-dir <dir>',
      "the server's data, bootstrap.json and the agents' state (deleted when the demo ends)",
      './demo-data',
    )
    .option(
      '--listen <host:port>',
      'where the console is reachable on this machine',
      '127.0.0.1:8443',
    )
    .option(
      '--tamper-every <seconds>',
      "tamper with one host's rules this often (0: never)",
      whole(0, 86_400),
      60,
    )
    .option('--down', 'remove everything a demo made: namespaces, processes, rules, its data dir')
    .action(
      async (opts: {
        hosts: number
        dataDir: string
        listen: string
        tamperEvery: number
        down?: boolean
      }) => {
        if (process.getuid?.() !== 0)
          throw new Error(
            'the demo makes network namespaces and programs firewalls inside them: run it as root (sudo npx palisade demo)',
          )
        // Loaded here, as the server is: the agent's commands start without the lab.
        const { Demo, demoDown } = await import('@palisade/lab')
        if (opts.down) {
          const done = await demoDown(opts.dataDir)
          console.log(done.length > 0 ? done.join('\n') : 'no demo found: nothing to remove')
          return
        }
        const out = new Screen()
        const t0 = performance.now()
        const demo = await Demo.up({
          hosts: opts.hosts,
          dataDir: opts.dataDir,
          listen: opts.listen,
          tamperEvery: opts.tamperEvery,
          log: (line) => out.log(line),
        })
        const s = demo.state
        out.log(
          [
            '',
            `Palisade demo is up (${((performance.now() - t0) / 1000).toFixed(1)} s).`,
            `  console:  ${s.console_url}  (sign in as admin; the password is in ${s.bootstrap})`,
            `  API key:  api_user and api_secret in ${s.bootstrap}; CA certificate: ca_cert there`,
            `  estate:   ${s.hosts.map((h) => `${h.name} (${h.ip4}, ${h.foreign})`).join(', ')}`,
            `  stop:     Ctrl-C, or \`palisade demo --down\` from another terminal`,
            '',
          ].join('\n'),
        )
        let stopping = false
        const refresh = async () => {
          if (stopping) return
          try {
            out.block(statusBlock(await demo.view(), demo))
          } catch (e) {
            out.log(`status: ${(e as Error).message}`)
          }
        }
        await refresh()
        const timer = setInterval(() => void refresh(), out.tty ? 2000 : 15_000)
        const stop = (signal: string) => {
          if (stopping) return
          stopping = true
          clearInterval(timer)
          out.log(`${signal}: removing everything the demo made`)
          void demo.down().then(
            () => {
              out.log('done: no namespace, process or rule of the demo is left')
              process.exit(0)
            },
            (e: Error) => {
              console.error(`palisade demo: ${e.message}; run \`palisade demo --down\``)
              process.exit(1)
            },
          )
        }
        process.once('SIGINT', () => stop('SIGINT'))
        process.once('SIGTERM', () => stop('SIGTERM'))
      },
    )
}

/** A status block redrawn in place on a terminal; log lines go above it. */
class Screen {
  readonly tty = process.stdout.isTTY === true
  #shown = 0

  log(line: string): void {
    this.#erase()
    process.stdout.write(`${line}\n`)
  }

  block(lines: readonly string[]): void {
    this.#erase()
    process.stdout.write(`${lines.join('\n')}\n`)
    if (this.tty) this.#shown = lines.length
  }

  #erase(): void {
    // Up to the first line of the block, then clear to the end of the screen.
    if (this.#shown > 0) process.stdout.write(`\x1b[${this.#shown}F\x1b[J`)
    this.#shown = 0
  }
}
