import { sql } from 'kysely'
import type { Transaction } from 'kysely'
import type { Database } from '../db/schema.js'

/** One agent's status report as stored; null keeps what the agent's row holds. */
export interface StatusReport {
  readonly agentId: string
  /** Hash of the secret the report came with: the write itself authenticates it. */
  readonly tokenHash: string
  readonly at: string
  readonly applied: { readonly version: number; readonly mode: string | null } | null
  readonly health: string | null
  readonly survey: string | null
  readonly ruleset: string | null
  readonly backend: string | null
  /** The build the agent runs (JSON), from agents that follow upgrade orders. */
  readonly build: string | null
}

/** A stored report: the release the agent is ordered to run, and the build it runs. */
export interface StatusWritten {
  readonly targetRelease: string | null
  readonly build: string | null
}

/** Reports of one agent in one batch, earliest first, as one: what a later one says wins. */
function merged(a: StatusReport, b: StatusReport): StatusReport {
  return {
    ...a,
    at: b.at,
    applied: b.applied ?? a.applied,
    health: b.health ?? a.health,
    survey: b.survey ?? a.survey,
    ruleset: b.ruleset ?? a.ruleset,
    backend: b.backend ?? a.backend,
    build: b.build ?? a.build,
  }
}

/**
 * Writes a batch of status reports in one statement; resolves, per report, with whether its
 * credential matched an agent, and its upgrade order (a report with a wrong or revoked
 * credential writes nothing and resolves undefined).
 * Comparing hashes of random secrets in SQL leaks nothing by its timing. A pending unpair stays
 * pending until the agent says goodbye.
 */
export async function writeStatusReports(
  tx: Transaction<Database>,
  reports: readonly StatusReport[],
): Promise<(StatusWritten | undefined)[]> {
  const byAgent = new Map<string, StatusReport>()
  const keyOf = (r: { agentId: string; tokenHash: string }) => `${r.agentId}\0${r.tokenHash}`
  for (const r of reports) {
    const before = byAgent.get(keyOf(r))
    byAgent.set(keyOf(r), before ? merged(before, r) : r)
  }
  const rows = [...byAgent.values()].map(
    (r) =>
      sql`(${r.agentId}, ${r.tokenHash}, ${r.at}, cast(${r.applied?.version ?? null} as integer), ${r.applied?.mode ?? null}, ${r.health}, ${r.survey}, ${r.ruleset}, ${r.backend}, ${r.build})`,
  )
  // A CTE with named columns reads the same on SQLite and PostgreSQL (SQLite has no column
  // list on a VALUES alias).
  const { rows: matched } = await sql<{
    id: string
    token_hash: string
    target_release: string | null
    build: string | null
  }>`
    with r(id, token_hash, at, applied_version, applied_mode, health, survey, ruleset, backend,
      build)
      as (values ${sql.join(rows)})
    update agents set
      status = case when agents.status like 'unpairing:%' then agents.status else 'active' end,
      last_heartbeat_at = r.at,
      applied_version = coalesce(r.applied_version, agents.applied_version),
      applied_at = case when r.applied_version is null then agents.applied_at else r.at end,
      applied_mode = case when r.applied_version is null then agents.applied_mode
        else r.applied_mode end,
      health = coalesce(r.health, agents.health),
      survey = coalesce(r.survey, agents.survey),
      ruleset = coalesce(r.ruleset, agents.ruleset),
      ruleset_at = case when r.ruleset is null then agents.ruleset_at else r.at end,
      backend = coalesce(r.backend, agents.backend),
      build = coalesce(r.build, agents.build)
    from r
    where agents.id = r.id and agents.token_hash = r.token_hash
    returning agents.id, agents.token_hash, agents.target_release, agents.build`.execute(tx)
  const written = new Map(
    matched.map((m) => [
      keyOf({ agentId: m.id, tokenHash: m.token_hash }),
      { targetRelease: m.target_release, build: m.build },
    ]),
  )
  return reports.map((r) => written.get(keyOf(r)))
}
