/**
 * The workload settings (`/orgs/{org}/settings/workloads`): after how long without a heartbeat
 * an agent is warned about and marked offline, how long after a goodbye, each per label scope
 * and VEN type. Pure: checking a body, and the thresholds that apply to one workload.
 */
import type { Doc } from '../validate.js'
import { Checker, isObj } from '../validate.js'

/** One setting entry: the labels it applies to (all of them), a VEN type, and its value. */
export interface ScopedValue {
  readonly scope: readonly { readonly href: string }[]
  readonly ven_type?: 'server' | 'endpoint' | null
  readonly value?: number
  readonly warning?: number
}

export const WORKLOAD_SETTINGS = [
  'workload_disconnected_timeout_seconds',
  'workload_goodbye_timeout_seconds',
  'workload_disconnected_notification_seconds',
  'ven_uninstall_timeout_hours',
] as const
export type WorkloadSettingName = (typeof WORKLOAD_SETTINGS)[number]
export type WorkloadSettings = Readonly<Record<WorkloadSettingName, readonly ScopedValue[]>>

/** The vendor's defaults: a warning after 15 minutes, offline after an hour, 15 after a goodbye. */
export const DEFAULT_WORKLOAD_SETTINGS: WorkloadSettings = {
  workload_disconnected_timeout_seconds: [{ scope: [], value: 3600, ven_type: null }],
  workload_goodbye_timeout_seconds: [{ scope: [], value: 900, ven_type: null }],
  workload_disconnected_notification_seconds: [{ scope: [], warning: 900, ven_type: null }],
  ven_uninstall_timeout_hours: [{ scope: [], value: -1 }],
}

/** The lowest timeout the vendor takes (other than -1, never). */
const MIN_SECONDS = 300

/** Checks a PUT body; resolves with the settings it sets (406 with every problem otherwise). */
export function checkWorkloadSettings(
  body: Doc,
  labels: ReadonlyMap<string, unknown>,
): Partial<Record<WorkloadSettingName, ScopedValue[]>> {
  const c = new Checker()
  c.only(body, '$', WORKLOAD_SETTINGS)
  const out: Partial<Record<WorkloadSettingName, ScopedValue[]>> = {}
  for (const name of WORKLOAD_SETTINGS) {
    const list = c.array(body, name, '$', { max: 1000 })
    if (!list) continue
    const field = name === 'workload_disconnected_notification_seconds' ? 'warning' : 'value'
    const hours = name === 'ven_uninstall_timeout_hours'
    const entries: ScopedValue[] = []
    const seen = new Set<string>()
    list.forEach((x, i) => {
      const path = `$.${name}[${i}]`
      const o = c.object(x, path)
      if (!o) return
      c.only(o, path, hours ? ['scope', field] : ['scope', field, 'ven_type'])
      const scope: { href: string }[] = []
      ;(c.array(o, 'scope', path, { max: 64 }) ?? []).forEach((s, j) => {
        const href = c.hrefRef(s, `${path}.scope[${j}]`)
        if (href === undefined) return
        if (!labels.has(href))
          return void c.fail(`${path}.scope[${j}]`, `label ${href} does not exist`, 'invalid_label')
        scope.push({ href })
      })
      // An empty or missing VEN type is the server's, as the vendor reads it.
      const venType =
        o.ven_type === ''
          ? 'server'
          : c.oneOf(o, 'ven_type', path, ['server', 'endpoint'], { nullable: true })
      const v = c.int(o, field, path, { required: true, min: -1, max: 2_147_483_647 })
      if (v !== undefined && v !== -1 && !hours && v < MIN_SECONDS)
        c.fail(`${path}.${field}`, `must be -1 (never) or at least ${MIN_SECONDS} seconds`)
      if (v !== undefined && v === 0 && hours)
        c.fail(`${path}.${field}`, 'must be -1 (never) or at least 1 hour')
      const key = `${scope
        .map((s) => s.href)
        .sort()
        .join(',')}|${venType ?? ''}`
      if (seen.has(key))
        c.fail(path, 'another entry has the same scope and ven_type; keep one of them')
      seen.add(key)
      if (v !== undefined)
        entries.push({
          scope,
          ...(!hours && { ven_type: venType ?? null }),
          [field]: v,
        })
    })
    out[name] = entries
  }
  c.done()
  return out
}

/** The stored settings read back, each unset one at its default. */
export function workloadSettingsOf(stored: ReadonlyMap<string, unknown>): WorkloadSettings {
  const out: Record<string, readonly ScopedValue[]> = {}
  for (const name of WORKLOAD_SETTINGS) {
    const v = stored.get(name)
    out[name] =
      Array.isArray(v) && v.every(isObj)
        ? (v as unknown as ScopedValue[])
        : DEFAULT_WORKLOAD_SETTINGS[name]
  }
  return out as WorkloadSettings
}

/**
 * The entry of a setting that applies to a workload: of its VEN type (or any), every scope
 * label on the workload; the one naming most labels wins, the first of equals. Undefined when
 * none applies.
 */
export function entryFor(
  entries: readonly ScopedValue[],
  w: { readonly labels: readonly string[]; readonly venType: string },
): ScopedValue | undefined {
  let best: ScopedValue | undefined
  for (const e of entries) {
    if (e.ven_type && e.ven_type !== w.venType) continue
    if (!e.scope.every((s) => w.labels.includes(s.href))) continue
    if (!best || e.scope.length > best.scope.length) best = e
  }
  return best
}

/** The seconds after which a workload is warned about, offline, and offline after a goodbye. */
export interface Thresholds {
  /** Undefined: never. */
  readonly warnSeconds?: number
  readonly offlineSeconds?: number
  readonly goodbyeSeconds?: number
}

export function thresholdsFor(
  s: WorkloadSettings,
  w: { readonly labels: readonly string[]; readonly venType: string },
): Thresholds {
  const seconds = (n: number | undefined) => (n === undefined || n < 0 ? undefined : n)
  return {
    warnSeconds: seconds(entryFor(s.workload_disconnected_notification_seconds, w)?.warning),
    offlineSeconds: seconds(entryFor(s.workload_disconnected_timeout_seconds, w)?.value),
    goodbyeSeconds: seconds(entryFor(s.workload_goodbye_timeout_seconds, w)?.value),
  }
}
