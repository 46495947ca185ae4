import { isDeepStrictEqual } from 'node:util'
import type { AgentConfig } from './agent-config.js'
import { DEFAULT_CONFIG } from './agent-config.js'
import type { StatePaths } from './state-dir.js'
import { readJson, writeJson } from './state-dir.js'

/**
 * The state dir's format, recorded in `state-format.json`. A dir without it was written by an
 * agent before formats were recorded: format 1. An agent migrates an older dir forward, step
 * by step, and refuses a newer one: what a newer agent wrote is never guessed at.
 *
 * - 1: `config.json` holds every setting, the defaults of the agent that wrote it included,
 *   so a newer agent's defaults (a heartbeat, a deadline) never reached an upgraded host.
 * - 2: `config.json` holds only what differs from the defaults (and the server); the dir
 *   records its format, and may hold `upgrade.json` (an upgrade on trial).
 */
export const STATE_FORMAT = 2

export interface StateFormatFile {
  readonly format: number
  /** The agent version that wrote it, for people. */
  readonly written_by: string
}

export class StateFormatError extends Error {}

/** `config` without the settings equal to `defaults` (nested objects: key by key). */
export function withoutDefaults(
  config: Record<string, unknown>,
  defaults: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(config)) {
    const d = defaults[k]
    if (isDeepStrictEqual(v, d)) continue
    const nested =
      typeof v === 'object' && v !== null && !Array.isArray(v) && typeof d === 'object' && d
    out[k] = nested
      ? withoutDefaults(v as Record<string, unknown>, d as Record<string, unknown>)
      : v
  }
  return out
}

/**
 * The defaults every agent of format 1 wrote into config.json. A value equal to one of them is
 * taken for the default it was (format 1 cannot tell it from a choice), so the defaults changed
 * since reach the host: the change poll went from 1 s to 200 ms.
 */
const FORMAT_1_DEFAULTS: AgentConfig = { ...DEFAULT_CONFIG, pollMs: 1000 }

/** Each step takes a dir in format `from` to `from + 1`. */
const STEPS: Record<number, (p: StatePaths) => Promise<void>> = {
  1: async (p) => {
    const config = await readJson<Partial<AgentConfig>>(p.config)
    if (config)
      await writeJson(
        p.config,
        withoutDefaults(config, FORMAT_1_DEFAULTS as unknown as Record<string, unknown>),
      )
  },
}

/** The format the dir is in: 1 when unrecorded; an unreadable record is an error. */
export async function stateFormatOf(p: StatePaths): Promise<number> {
  const f = await readJson<Partial<StateFormatFile>>(p.format)
  if (f === undefined) return 1
  if (typeof f !== 'object' || f === null || !Number.isInteger(f.format) || (f.format ?? 0) < 1)
    throw new StateFormatError(
      `${p.format} names no state-dir format (${JSON.stringify(f)}); restore it from a backup or remove the state dir and activate again`,
    )
  return f.format as number
}

/**
 * Brings the state dir to `STATE_FORMAT` (call it while holding the dir: no other agent runs
 * on it). Returns the format it found. A newer format is refused, the dir left untouched.
 */
export async function migrateStateDir(
  p: StatePaths,
  version: string,
  log: (line: Record<string, unknown>) => void = () => undefined,
): Promise<number> {
  const found = await stateFormatOf(p)
  if (found > STATE_FORMAT)
    throw new StateFormatError(
      `${p.dir} is in state-dir format ${found}, written by a newer agent; this agent (version ${version}) knows formats up to ${STATE_FORMAT}: run the newer agent, or remove the state dir and activate again`,
    )
  for (let f = found; f < STATE_FORMAT; f++) {
    const step = STEPS[f]
    if (!step) throw new StateFormatError(`no migration from state-dir format ${f}`)
    await step(p)
    // Recorded after each step: a crash in the next one starts again from here.
    await writeJson(p.format, { format: f + 1, written_by: version } satisfies StateFormatFile)
    log({ msg: 'state dir migrated', dir: p.dir, from: f, to: f + 1 })
  }
  return found
}
