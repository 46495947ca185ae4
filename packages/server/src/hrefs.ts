/**
 * Every href the server shows, and the few it reads back: built and parsed here, so each
 * resource's address is written once. Policy objects live under a policy version: `draft`,
 * `active` or a provisioned number; references between them are kept in their draft form.
 */
import type { PolicyType, RuleKind } from './policy/types.js'

export const labelHref = (org: number, id: number) => `/orgs/${org}/labels/${id}`
export const labelDimensionHref = (org: number, id: string) => `/orgs/${org}/label_dimensions/${id}`
export const workloadHref = (org: number, id: string) => `/orgs/${org}/workloads/${id}`
export const agentHref = (org: number, id: string) => `/orgs/${org}/agents/${id}`
export const venHref = (org: number, id: string) => `/orgs/${org}/vens/${id}`
export const pairingProfileHref = (org: number, id: number) => `/orgs/${org}/pairing_profiles/${id}`
export const eventHref = (org: number, uuid: string) => `/orgs/${org}/events/${uuid}`
export const jobHref = (org: number, id: string) => `/orgs/${org}/jobs/${id}`
export const datafileHref = (org: number, id: string) => `/orgs/${org}/datafiles/${id}`
export const trafficQueryHref = (org: number, id: string) =>
  `/orgs/${org}/traffic_flows/async_queries/${id}`
export const serviceBindingHref = (org: number, id: string) => `/orgs/${org}/service_bindings/${id}`
export const userHref = (id: number) => `/users/${id}`
export const apiKeyHref = (user: number, keyId: string) => `${userHref(user)}/api_keys/${keyId}`
export const orgApiKeyHref = (org: number, keyId: string) => `/orgs/${org}/api_keys/${keyId}`
export const serviceAccountHref = (org: number, id: string) => `/orgs/${org}/service_accounts/${id}`
/** Palisade's one role: full access to the org. */
export const ownerRoleHref = (org: number) => `/orgs/${org}/roles/owner`

/** A policy version: `draft`, `active` or a provisioned number. */
export const policyVersionHref = (org: number, pv: string | number) =>
  `/orgs/${org}/sec_policy/${pv}`

/** A policy object in a policy version (the firewall settings are one per org: no id). */
export const policyObjectHref = (org: number, pv: string, type: PolicyType, id: string) =>
  type === 'firewall_settings'
    ? `${policyVersionHref(org, pv)}/firewall_settings`
    : `${policyVersionHref(org, pv)}/${type}/${id}`

export const draftObjectHref = (org: number, type: PolicyType, id: string) =>
  policyObjectHref(org, 'draft', type, id)

/** A rule of a rule set, under that rule set's href in whichever version it is shown. */
export const ruleHref = (ruleSetHref: string, kind: RuleKind, id: unknown) =>
  `${ruleSetHref}/${kind}/${String(id)}`

/** Any policy version's href of an object, as its draft href (references are kept in draft form). */
export const draftHref = (href: string) =>
  href.replace(/\/sec_policy\/(active|\d+)\//, '/sec_policy/draft/')

/** Whether an href names a draft policy object (not a label, a workload or the like). */
export const isDraftObjectHref = (href: string) => href.includes('/sec_policy/draft/')

/** Whether an href names a workload of the org. */
export const isWorkloadHrefOf = (org: number, href: string) =>
  href.startsWith(`/orgs/${org}/workloads/`)

/** The id an href ends with. */
export const idOf = (href: string) => href.split('/').pop() ?? ''
