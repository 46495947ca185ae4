/** How serious an event is: the syslog severities, as the events API names them. */
export const EVENT_SEVERITIES = [
  'emerg',
  'alert',
  'crit',
  'err',
  'warning',
  'notice',
  'info',
  'debug',
] as const
export type EventSeverity = (typeof EVENT_SEVERITIES)[number]
