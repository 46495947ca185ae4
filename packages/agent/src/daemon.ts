import { loadConfig, requestedBackend } from './agent-config.js'
import { runningBuild } from './agent-restart.js'
import { unhealthyStatus } from './agent-status.js'
import { systemClock } from './clock.js'
import type { KnownGood } from './commit-confirm.js'
import type { Enforcer } from './enforcer.js'
import { agentEvent } from './events.js'
import { readOsRelease } from './host-facts.js'
import { detectHost } from './host-survey.js'
import { saveForeignRuleset } from './netfilter/foreign-save.js'
import { Outbox } from './outbox.js'
import { guardProcess } from './process-guard.js'
import type { RunAgentOptions } from './running-agent-options.js'
import { RunningAgent } from './running-agent.js'
import { SelfUpgrade } from './self-upgrade.js'
import { FailoverClient, serverUrls } from './server-failover.js'
import type { StatePaths } from './state-dir.js'
import { claimStateDir, ensureStateDir, LatestJsonWriter, readJson } from './state-dir.js'
import { migrateStateDir } from './state-format.js'

/** The agent must be started again before it enforces anything (a rollback put another build in place). */
export class RestartRequired extends Error {}

/**
 * The agent daemon: chooses a backend, surveys the host, saves the foreign firewall before the
 * first takeover, and enforces policy from a local file or from its policy server (falling
 * back to the last known-good copy), keeping `status.json` and the event log current.
 * Returns a function that stops it; our rules stay in the kernel, so the host stays protected.
 */
export async function runAgent(
  o: RunAgentOptions,
): Promise<{ stop: () => Promise<void>; enforcer: Enforcer; paths: StatePaths }> {
  const clock = systemClock
  const unguard = guardProcess(o.log)
  const paths = await ensureStateDir(o.stateDir)
  const release = await claimStateDir(paths)
  // Held: no other agent runs on it while an older format is migrated (a newer one is refused).
  await migrateStateDir(paths, o.version, o.log).catch(async (e: Error) => {
    await release()
    throw e
  })
  const config = await loadConfig(paths)
  const requested = requestedBackend(config, o.backend)
  const os = await readOsRelease()
  const statusFile = new LatestJsonWriter(paths.status, (e) =>
    o.log({ msg: 'cannot write status', error: e.message }),
  )
  // A host that cannot be enforced on is reported once per reason (it is retried with back-off).
  const events = new Outbox(paths.events, paths.eventsOffset)
  let lastReason: string | undefined
  const view = await detectHost({
    run: o.run,
    clock,
    log: o.log,
    requested,
    os,
    unhealthy: (reason) => {
      statusFile.write(
        unhealthyStatus({ requested, os: os.prettyName, reason, now: clock.isoNow() }),
      )
      if (reason === lastReason) return
      lastReason = reason
      events
        .append([agentEvent(clock, 'agent.health', 'err', { reason })])
        .catch((e: Error) => o.log({ msg: 'cannot record event', error: e.message }))
    },
  })
  const known = await readJson<KnownGood>(paths.policy)
  if (!known)
    await saveForeignRuleset(o.run, paths.saved).catch((e: Error) =>
      o.log({
        msg: 'could not save the firewall found on this host; unpair --firewall-restore saved will not be possible',
        error: e.message,
      }),
    )
  const serverUrl = config.server && !o.policyFile ? new URL(config.server.url) : undefined
  const token = serverUrl
    ? (await readJson<{ token: string }>(`${paths.dir}/credentials.json`))?.token
    : undefined
  if (serverUrl && token === undefined)
    throw new Error(`${paths.dir}/credentials.json is missing: activate this agent again`)
  // An upgrade on trial: this build passes by reporting in time, or is rolled back.
  const { build, executable } = await runningBuild(o.version)
  const upgrade =
    config.server && token !== undefined && o.onRestart && build
      ? new SelfUpgrade({
          paths,
          clock,
          build,
          executable,
          // Downloaded from any of the agent's servers that answers, as its reports go.
          client: new FailoverClient({
            urls: serverUrls(config.server),
            caCertFile: config.server.caCertFile,
            authorization: `Bearer ${token}`,
            log: o.log,
          }),
          trialMs: config.upgradeTrialMs,
          record: (e) => {
            o.log({ msg: 'event', ...e })
            events
              .append([e])
              .catch((err: Error) => o.log({ msg: 'cannot record event', error: err.message }))
          },
          log: o.log,
          // Orders come through the running agent, so it exists by the time one restarts it.
          restart: (why) =>
            void agent
              .stop()
              .then(() => {
                unguard()
                o.onRestart?.(why)
              })
              .catch((e: Error) => o.log({ msg: 'cannot stop to restart', error: e.message })),
        })
      : undefined
  if ((await upgrade?.resume()) === 'restart') {
    await release()
    unguard()
    throw new RestartRequired('the new build was rolled back: the previous build starts again')
  }
  const agent = new RunningAgent({
    ...o,
    clock,
    paths,
    config,
    os,
    view,
    statusFile,
    token,
    release,
    ...(upgrade && {
      build,
      onOrders: (r) => r.upgrade && upgrade.order(r.upgrade),
      onReported: () => upgrade.reported(),
    }),
  })
  await agent.start(known, () =>
    o.log({
      msg: 'agent started',
      backend: view.choice.backend,
      reason: view.choice.reason,
      warnings: view.choice.warnings,
      stateDir: paths.dir,
      server: serverUrl?.href ?? null,
    }),
  )
  return {
    enforcer: agent.enforcer,
    paths,
    stop: async () => {
      upgrade?.stop()
      await agent.stop()
      unguard()
    },
  }
}
