/**
 * The event log's settings (`/orgs/{org}/settings/events`): how long events are kept, the
 * least severe event recorded, and the syslog format (kept; Palisade exports no syslog). Pure.
 */
import type { Doc } from '../validate.js'
import { Checker } from '../validate.js'

export const EVENT_SETTINGS = [
  'audit_event_retention_seconds',
  'audit_event_min_severity',
  'format',
] as const
export type EventSettings = {
  readonly audit_event_retention_seconds: number
  readonly audit_event_min_severity: 'error' | 'warning' | 'informational'
  readonly format: 'JSON' | 'CEF' | 'LEEF'
}

/** 90 days, every event, JSON. */
export const DEFAULT_EVENT_SETTINGS: EventSettings = {
  audit_event_retention_seconds: 90 * 86_400,
  audit_event_min_severity: 'informational',
  format: 'JSON',
}

const MIN_SEVERITIES = ['error', 'warning', 'informational'] as const

/** Checks a PUT body; resolves with the settings it sets (406 with every problem otherwise). */
export function checkEventSettings(body: Doc): Partial<EventSettings> {
  const c = new Checker()
  c.only(body, '$', EVENT_SETTINGS)
  const retention = c.int(body, 'audit_event_retention_seconds', '$', {
    min: 86_400,
    max: 17_280_000,
  })
  const severity = c.oneOf(body, 'audit_event_min_severity', '$', MIN_SEVERITIES)
  const format = c.oneOf(body, 'format', '$', ['JSON', 'CEF', 'LEEF'])
  c.done()
  return {
    ...(retention !== undefined && { audit_event_retention_seconds: retention }),
    ...(severity !== undefined && { audit_event_min_severity: severity }),
    ...(format !== undefined && { format }),
  }
}

/** The stored settings read back, each unset one at its default. */
export function eventSettingsOf(stored: ReadonlyMap<string, unknown>): EventSettings {
  const pick = <K extends keyof EventSettings>(k: K) =>
    (stored.get(k) as EventSettings[K] | undefined) ?? DEFAULT_EVENT_SETTINGS[k]
  return {
    audit_event_retention_seconds: pick('audit_event_retention_seconds'),
    audit_event_min_severity: pick('audit_event_min_severity'),
    format: pick('format'),
  }
}

/**
 * The minimum severities that drop an event of this severity: `warning` keeps warnings and
 * worse, `error` keeps `err` and worse (the syslog levels events carry).
 */
export function minSeveritiesDropping(severity: string): string[] {
  if (['emerg', 'alert', 'crit', 'err'].includes(severity)) return []
  if (severity === 'warning') return ['error']
  return ['warning', 'error']
}
