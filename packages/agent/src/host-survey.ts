import type { Backend, Ruleset } from '@palisade/firewall'
import { connlabelName, FLOW_COUNTED_LABEL } from '@palisade/firewall'
import type { WorkloadInterface } from '@palisade/model'
import type { RulesetSurvey } from '@palisade/protocol'
import { readFile } from 'node:fs/promises'
import type { Clock, Timer } from './clock.js'
import type { BackendChoice } from './detect.js'
import { chooseBackend, countRules } from './detect.js'
import type { Runner } from './exec.js'
import type { OsRelease } from './host-facts.js'
import { activeServices, hostInterfaces, installedTools } from './host-facts.js'
import { readHost } from './netfilter/read-host.js'
import { surveyRuleset } from './survey.js'

export interface HostSurveyOptions {
  readonly run: Runner
  readonly clock: Clock
  readonly log: (line: Record<string, unknown>) => void
  /** Something changed that the server and the flow collector follow. */
  readonly onChange: () => void
}

/** What the host looks like: its firewalls, the backend chosen, its addresses. */
export interface HostView {
  readonly choice: BackendChoice
  readonly survey: RulesetSurvey
  readonly ruleset: Ruleset
  readonly interfaces: WorkloadInterface[] | undefined
  /**
   * The name the backend's connlabel.conf gives the conntrack label our kernel counting marks
   * with: the tool prints it in place of the number, so flows are logged, never counted in the
   * kernel.
   */
  readonly countLabelName?: string
}

/** Where each backend's tool reads the names of conntrack labels. */
const CONNLABEL_CONF: Readonly<Record<Backend, string>> = {
  nftables: '/etc/connlabel.conf',
  'iptables-nft': '/etc/xtables/connlabel.conf',
  'iptables-legacy': '/etc/xtables/connlabel.conf',
}

const readInterfaces = (run: Runner, log: HostSurveyOptions['log']) =>
  hostInterfaces(run).catch((e: Error) => {
    log({ msg: 'cannot read the host addresses', error: e.message })
    return undefined
  })

/** Reads the host, chooses a backend and surveys the firewalls found. */
async function viewHost(
  run: Runner,
  log: HostSurveyOptions['log'],
  requested: Backend | 'auto',
  os: OsRelease,
): Promise<HostView> {
  const host = await readHost(run)
  const choice = chooseBackend(
    { ...countRules(host.ruleset), os, tools: await installedTools() },
    requested,
  )
  const warnings = [...choice.warnings]
  if (host.mixedBackends && !warnings.some((w) => w.includes('mixes')))
    warnings.push('this host mixes iptables-legacy and nf_tables rules')
  if (host.missingTools.length > 0)
    warnings.push(`not installed, so not surveyed: ${host.missingTools.join(', ')}`)
  const conf = CONNLABEL_CONF[choice.backend]
  const countLabelName = connlabelName(
    await readFile(conf, 'utf8').catch(() => ''),
    FLOW_COUNTED_LABEL,
  )
  if (countLabelName !== undefined)
    warnings.push(
      `${conf} names conntrack label ${FLOW_COUNTED_LABEL} "${countLabelName}": flows are logged, not counted in the kernel`,
    )
  return {
    choice: { ...choice, warnings },
    survey: surveyRuleset(host.ruleset, await activeServices(run)),
    ruleset: host.ruleset,
    interfaces: await readInterfaces(run, log),
    ...(countLabelName !== undefined && { countLabelName }),
  }
}

/**
 * Reads the host and chooses a backend. Until that works, says why (`unhealthy`) and tries
 * again with back-off: an agent that cannot enforce must say so, not crash-loop.
 */
export async function detectHost(
  o: Omit<HostSurveyOptions, 'onChange'> & {
    readonly requested: Backend | 'auto'
    readonly os: OsRelease
    readonly unhealthy: (reason: string) => void
  },
): Promise<HostView> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await viewHost(o.run, o.log, o.requested, o.os)
    } catch (e) {
      const reason = `cannot start enforcing: ${(e as Error).message}`
      o.log({ msg: 'agent unhealthy', reason, attempt })
      o.unhealthy(reason)
      await o.clock.sleep(Math.min(30_000, 500 * 2 ** Math.min(attempt, 6)))
    }
  }
}

/**
 * The host survey: the backend chosen at start, and every firewall on the host read again now
 * and then (foreign firewalls change without telling us) and after each of our own changes.
 */
export class HostSurvey {
  readonly #o: HostSurveyOptions
  readonly choice: BackendChoice
  #survey: RulesetSurvey
  #ruleset: Ruleset
  #interfaces: WorkloadInterface[] | undefined
  #surveying = false
  #again = false
  #timer: Timer | undefined

  constructor(view: HostView, o: HostSurveyOptions) {
    this.#o = o
    this.choice = view.choice
    this.#survey = view.survey
    this.#ruleset = view.ruleset
    this.#interfaces = view.interfaces
  }

  get survey(): RulesetSurvey {
    return this.#survey
  }

  /** The host's whole ruleset as last read, for the server's analysis. */
  get ruleset(): Ruleset {
    return this.#ruleset
  }

  /** The host's addresses as last read; undefined if they never could be. */
  get interfaces(): WorkloadInterface[] | undefined {
    return this.#interfaces
  }

  /** Reads the host again every `everyMs`. */
  repeat(everyMs: number): void {
    this.#timer = this.#o.clock.setInterval(() => void this.resurvey(), everyMs)
  }

  stop(): void {
    this.#timer?.cancel()
  }

  /**
   * Re-reads every firewall on the host and its addresses. A call during a read asks for one
   * more read after it, so the last change is never missed.
   */
  async resurvey(): Promise<void> {
    if (this.#surveying) {
      this.#again = true
      return
    }
    this.#surveying = true
    try {
      do {
        this.#again = false
        try {
          const host = await readHost(this.#o.run)
          this.#survey = surveyRuleset(host.ruleset, await activeServices(this.#o.run))
          this.#ruleset = host.ruleset
          this.#interfaces = (await readInterfaces(this.#o.run, this.#o.log)) ?? this.#interfaces
          this.#o.onChange()
        } catch (e) {
          this.#o.log({
            msg: 'cannot read the host firewall for the survey',
            error: (e as Error).message,
          })
        }
      } while (this.#again)
    } finally {
      this.#surveying = false
    }
  }
}
