import { policyObjectHref, serviceBindingHref, workloadHref } from '../hrefs.js'
import type { BindingRow } from '../stores/service-bindings.js'
import type { Doc } from '../validate.js'

/** A binding as the API shows it: the active virtual service, the workload, the moved ports. */
export function bindingView(
  org: number,
  b: BindingRow,
  workload?: { name: string; hostname: string },
): Doc {
  const vs = { href: policyObjectHref(org, 'active', 'virtual_services', b.virtual_service_id) }
  return {
    href: serviceBindingHref(org, b.id),
    virtual_service: vs,
    bound_service: vs,
    workload: {
      href: workloadHref(org, b.workload_id),
      ...(workload && { name: workload.name, hostname: workload.hostname, deleted: false }),
    },
    port_overrides: b.port_overrides,
    external_data_set: b.external_data_set,
    external_data_reference: b.external_data_reference,
    created_at: b.created_at,
  }
}

/** The bindings as the model reads them (with the snapshot's other documents). */
export const bindingDocs = (org: number, rows: readonly BindingRow[]): Doc[] =>
  rows.map((b) => bindingView(org, b))
