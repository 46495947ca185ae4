/**
 * Every query parameter every route takes: the vendor's documented filters of each collection
 * (Illumio Core 25.2's OpenAPI index), the representation flags clients send, and Palisade's few
 * own. A route applies each one; a parameter not listed here is refused (406) before the route
 * runs, so a typo or an unsupported filter never silently widens what a bulk script acts on.
 * The OpenAPI document lists them, and docs/api-compatibility.md is checked against it.
 */
import { OBJECT_TYPES } from '../policy/types.js'
import type { FilterSpec } from './filter-kinds.js'

const MAX_RESULTS: FilterSpec = { name: 'max_results', kind: 'int', min: 0 }
const EXT: FilterSpec[] = [
  { name: 'external_data_set', kind: 'exact' },
  { name: 'external_data_reference', kind: 'exact' },
]
const NONE_DELETED = 'Palisade deletes at once: there are no deleted ones to include'
const NO_DATA = (what: string) => `Palisade has no ${what}: true (or any bound) matches nothing`

const WORKLOAD_FILTERS: FilterSpec[] = [
  { name: 'name', kind: 'partial' },
  { name: 'hostname', kind: 'partial' },
  { name: 'description', kind: 'partial' },
  { name: 'os_id', kind: 'partial' },
  {
    name: 'ip_address',
    kind: 'partial',
    note: 'a substring of any interface address',
  },
  {
    name: 'enforcement_mode',
    kind: 'enum',
    values: ['idle', 'visibility_only', 'selective', 'full'],
  },
  {
    name: 'enforcement_modes',
    kind: 'list',
    values: ['idle', 'visibility_only', 'selective', 'full'],
  },
  {
    name: 'mode',
    kind: 'enum',
    values: ['idle', 'illuminated', 'enforced', 'selective'],
    note: 'the legacy names: illuminated = visibility_only, enforced = full',
  },
  {
    name: 'visibility_level',
    kind: 'enum',
    values: [
      'flow_full_detail',
      'flow_summary',
      'flow_drops',
      'flow_off',
      'enhanced_data_collection',
    ],
  },
  { name: 'log_traffic', kind: 'bool', note: 'true: visibility_level is not flow_off' },
  { name: 'managed', kind: 'bool' },
  { name: 'online', kind: 'bool' },
  {
    name: 'policy_health',
    kind: 'enum',
    values: ['active', 'warning', 'error', 'suspended'],
    note: 'managed workloads only: error when the agent reports an error, warning when it has conditions or saw tampering, else active',
  },
  { name: 'labels', kind: 'labels' },
  { name: 'ven', kind: 'href', note: "the workload's VEN href" },
  { name: 'ven.ven_type', kind: 'enum', values: ['server', 'endpoint', 'containerized'] },
  { name: 'last_heartbeat_on[gte]', kind: 'time', note: 'managed workloads only' },
  { name: 'last_heartbeat_on[lte]', kind: 'time', note: 'managed workloads only' },
  {
    name: 'security_policy_sync_state',
    kind: 'enum',
    values: ['staged', 'synced', 'syncing'],
    note: 'staged matches nothing (agents apply each provision at once); synced and syncing are Palisade\u2019s states',
  },
  {
    name: 'security_policy_update_mode',
    kind: 'enum',
    values: ['static', 'adaptive'],
    note: 'every managed workload is adaptive',
  },
  { name: 'include_deleted', kind: 'flag', note: NONE_DELETED },
  { name: 'soft_deleted', kind: 'bool', note: 'true matches nothing (nothing is soft-deleted)' },
  { name: 'agent.active_pce_fqdn', kind: 'exact', note: NO_DATA('PCE FQDNs (no supercluster)') },
  { name: 'container_clusters', kind: 'list', note: NO_DATA('container clusters') },
  { name: 'managed_by', kind: 'exact', note: NO_DATA('managing entities') },
  {
    name: 'vulnerability_summary.vulnerability_exposure_score[gte]',
    kind: 'int',
    note: NO_DATA('vulnerability data'),
  },
  {
    name: 'vulnerability_summary.vulnerability_exposure_score[lte]',
    kind: 'int',
    note: NO_DATA('vulnerability data'),
  },
  {
    name: 'risk_summary.ransomware.workload_exposure_severity',
    kind: 'enum',
    values: ['low', 'medium', 'high', 'critical', 'fully_protected'],
    note: NO_DATA('ransomware data'),
  },
  ...EXT,
  MAX_RESULTS,
]

const VEN_FILTERS: FilterSpec[] = [
  { name: 'name', kind: 'partial' },
  { name: 'hostname', kind: 'partial' },
  { name: 'description', kind: 'partial' },
  { name: 'os', kind: 'partial', note: "the workload's os_id, os_detail or OS type" },
  {
    name: 'os_id',
    kind: 'partial',
    palisade: true,
    note: 'the same as os (the vendor documents os_id on /vens/facets only)',
  },
  { name: 'ip_address', kind: 'partial', note: 'a substring of any interface address' },
  {
    name: 'status',
    kind: 'enum',
    values: ['active', 'suspended', 'stopped', 'uninstalled', 'offline'],
    note: 'offline is Palisade\u2019s: an agent silent past the offline timeout',
  },
  {
    name: 'health',
    kind: 'enum',
    values: ['healthy', 'unhealthy', 'error', 'warning'],
    note: 'healthy: no conditions; warning: conditions; error and unhealthy: the agent reports an error',
  },
  {
    name: 'condition',
    kind: 'enum',
    values: [
      'agent.upgrade_time_out',
      'agent.missing_heartbeats_after_upgrade',
      'agent.clone_detected',
      'agent.missed_heartbeats',
      'agent.too_many_interfaces_reported',
      'agent.authentication_recovery',
      'agent.self_signed_certificate_in_grace_period',
      'agent.self_signed_certificate_expired',
      'agent.unauthenticated_clone_detected',
      'agent.weak_tls_ciphers_used',
    ],
  },
  { name: 'labels', kind: 'labels' },
  { name: 'version[gte]', kind: 'version' },
  { name: 'version[lte]', kind: 'version' },
  { name: 'last_heartbeat_at[gte]', kind: 'time' },
  { name: 'last_heartbeat_at[lte]', kind: 'time' },
  { name: 'last_goodbye_at[gte]', kind: 'time' },
  { name: 'last_goodbye_at[lte]', kind: 'time' },
  { name: 'disconnected_before', kind: 'time', note: 'the last heartbeat is before it' },
  {
    name: 'upgrade_pending',
    kind: 'bool',
    note: 'agents are upgraded as packages: none is pending',
  },
  { name: 'ven_type', kind: 'enum', values: ['server', 'endpoint', 'containerized'] },
  {
    name: 'activation_type',
    kind: 'enum',
    values: ['pairing_key', 'kerberos', 'ca_signed_certificate', 'self_signed_certificate'],
    note: 'every agent is activated with a pairing key',
  },
  { name: 'active_pce_fqdn', kind: 'exact', note: NO_DATA('PCE FQDNs (no supercluster)') },
  { name: 'authentication_recovery', kind: 'bool', note: 'true matches nothing' },
  { name: 'container_clusters', kind: 'list', note: NO_DATA('container clusters') },
  MAX_RESULTS,
]

/** Each policy object type's collection filters. */
const POLICY_OBJECT_FILTERS: Record<(typeof OBJECT_TYPES)[number], FilterSpec[]> = {
  virtual_services: [
    { name: 'name', kind: 'partial' },
    { name: 'description', kind: 'partial' },
    ...EXT,
    MAX_RESULTS,
  ],
  label_groups: [
    { name: 'name', kind: 'partial' },
    { name: 'description', kind: 'partial' },
    { name: 'key', kind: 'exact' },
    { name: 'usage', kind: 'flag', note: 'adds usage: where each group is used' },
    ...EXT,
    MAX_RESULTS,
  ],
  services: [
    { name: 'name', kind: 'partial' },
    { name: 'description', kind: 'partial' },
    {
      name: 'port',
      kind: 'port',
      note: 'a service port range overlaps it (-1: services for every port)',
    },
    { name: 'proto', kind: 'int', min: -1, max: 255 },
    { name: 'is_ransomware', kind: 'bool', note: NO_DATA('ransomware data') },
    {
      name: 'include_ransomware_protection_percent',
      kind: 'flag',
      note: NO_DATA('ransomware data') + ': the answer is the same',
    },
    ...EXT,
    MAX_RESULTS,
  ],
  ip_lists: [
    { name: 'name', kind: 'partial' },
    { name: 'description', kind: 'partial' },
    {
      name: 'ip_address',
      kind: 'partial',
      note: 'an address or CIDR matches the lists that contain it (exclusions honoured); other text matches the ranges as text',
    },
    { name: 'fqdn', kind: 'partial' },
    ...EXT,
    MAX_RESULTS,
  ],
  rule_sets: [
    { name: 'name', kind: 'partial' },
    { name: 'description', kind: 'partial' },
    {
      name: 'labels',
      kind: 'labels',
      note: 'a scope of the rule set holds every label of an inner list',
    },
    {
      name: 'labels_scope',
      kind: 'list',
      note: 'a scope whose labels are all in the list (a label type the scope leaves out stands for any)',
    },
    ...EXT,
    MAX_RESULTS,
  ],
  enforcement_boundaries: [
    { name: 'name', kind: 'partial' },
    {
      name: 'labels',
      kind: 'labels',
      note: 'the providers or consumers name every label of an inner list',
    },
    {
      name: 'network_type',
      kind: 'enum',
      values: ['brn', 'non_brn', 'all'],
      note: 'a boundary without network_type is brn',
    },
    { name: 'service', kind: 'href', note: 'ingress_services names the service' },
    { name: 'service_ports.port', kind: 'port' },
    { name: 'service_ports.proto', kind: 'int', min: -1, max: 255 },
    MAX_RESULTS,
  ],
}

const RULE_FILTERS: FilterSpec[] = [...EXT, MAX_RESULTS]

/** The registry: `METHOD /path` (as routes register, without /api/v2) to its parameters. */
export const QUERY_FILTERS: Readonly<Record<string, readonly FilterSpec[]>> = {
  'GET /orgs/:org/labels': [
    { name: 'key', kind: 'exact' },
    { name: 'value', kind: 'partial' },
    { name: 'include_deleted', kind: 'flag', note: NONE_DELETED },
    { name: 'usage', kind: 'flag', note: 'adds usage: where each label is used' },
    ...EXT,
    MAX_RESULTS,
  ],
  'GET /orgs/:org/label_dimensions': [
    { name: 'key', kind: 'partial' },
    { name: 'display_name', kind: 'partial' },
    { name: 'include_deleted', kind: 'flag', note: NONE_DELETED },
    ...EXT,
    MAX_RESULTS,
  ],
  ...Object.fromEntries(
    OBJECT_TYPES.map((t) => [`GET /orgs/:org/sec_policy/:pv/${t}`, POLICY_OBJECT_FILTERS[t]]),
  ),
  'GET /orgs/:org/sec_policy/:pv/rule_sets/:rs/sec_rules': RULE_FILTERS,
  'GET /orgs/:org/sec_policy/:pv/rule_sets/:rs/deny_rules': [MAX_RESULTS],
  'GET /orgs/:org/sec_policy': [MAX_RESULTS],
  'GET /orgs/:org/sec_policy/pending': [
    { name: 'max_results', kind: 'int', min: 0, note: 'per type' },
  ],
  'GET /orgs/:org/sec_policy/:pv/modified_objects': [MAX_RESULTS],
  'GET /orgs/:org/workloads': WORKLOAD_FILTERS,
  'GET /orgs/:org/vens': VEN_FILTERS,
  'GET /orgs/:org/pairing_profiles': [
    { name: 'name', kind: 'partial' },
    { name: 'description', kind: 'partial' },
    { name: 'labels', kind: 'labels' },
    {
      name: 'agent_software_release',
      kind: 'exact',
      note: 'profiles carry no release: matches nothing',
    },
    {
      name: 'ven_type',
      kind: 'enum',
      values: ['specified_during_activation', 'server', 'endpoint'],
    },
    ...EXT,
    MAX_RESULTS,
  ],
  'GET /orgs/:org/events': [
    { name: 'event_type', kind: 'exact' },
    {
      name: 'severity',
      kind: 'enum',
      values: ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'],
    },
    {
      name: 'status',
      kind: 'enum',
      values: ['success', 'failure', 'nil'],
      note: 'nil: events without a status',
    },
    { name: 'timestamp[gte]', kind: 'time' },
    { name: 'timestamp[lte]', kind: 'time' },
    {
      name: 'created_by',
      kind: 'exact',
      note: 'a user href (/users/1), an agent or VEN href, or system',
    },
    {
      name: 'max_results',
      kind: 'int',
      min: 0,
      max: 10_000,
      note: 'default 100, at most 10,000; more with Prefer: respond-async',
      hint: 'for more, ask with the header Prefer: respond-async',
    },
  ],
  'GET /orgs/:org/jobs': [{ name: 'job_type', kind: 'exact' }, MAX_RESULTS],
  'GET /orgs/:org/datafiles/:id': [
    {
      name: 'filename',
      kind: 'accepted',
      note: 'the name a download would be saved as; the data is the same',
    },
  ],
  'GET /orgs/:org/traffic_flows/async_queries': [MAX_RESULTS],
  'GET /orgs/:org/traffic_flows/async_queries/:id/download': [
    {
      name: 'include_draft_policy_in_csv',
      kind: 'bool',
      note: 'adds the draft_policy_decision column (after update_rules)',
    },
  ],
  'PUT /orgs/:org/traffic_flows/async_queries/:id/update_rules': [
    { name: 'label_based_rules', kind: 'bool', note: 'taken; the decision is the same' },
    { name: 'offset', kind: 'int', min: 0, note: 'taken; every flow is evaluated' },
    { name: 'limit', kind: 'int', min: 0, note: 'taken; every flow is evaluated' },
  ],
  'DELETE /orgs/:org/workloads/:id': [
    {
      name: 'force',
      kind: 'bool',
      palisade: true,
      note: 'true: a managed workload is deleted too, and its agent is told to unpair (firewall_restore default) when it next calls',
    },
  ],
  'GET /orgs/:org/workloads/:id/explain': [
    { name: 'src', kind: 'exact', palisade: true },
    { name: 'dst', kind: 'exact', palisade: true },
    { name: 'proto', kind: 'exact', palisade: true },
    { name: 'port', kind: 'exact', palisade: true },
    { name: 'sport', kind: 'exact', palisade: true },
  ],
  'GET /orgs/:org/service_bindings': [
    { name: 'virtual_service', kind: 'exact', note: 'its href, in any policy version' },
    { name: 'workload', kind: 'exact' },
    ...EXT,
    MAX_RESULTS,
  ],
  'GET /users': [{ name: 'type', kind: 'enum', values: ['local', 'external'] }],
  'GET /users/:id/api_keys': [MAX_RESULTS],
  'GET /orgs/:org/api_keys': [
    { name: 'name', kind: 'partial' },
    { name: 'username', kind: 'exact' },
    {
      name: 'role',
      kind: 'exact',
      note: 'Palisade has one role, full access: its href matches every key',
    },
    { name: 'state', kind: 'enum', values: ['active', 'expired'] },
    { name: 'type', kind: 'enum', values: ['user', 'service_account'] },
    MAX_RESULTS,
  ],
  'GET /orgs/:org/service_accounts': [
    { name: 'name', kind: 'partial' },
    {
      name: 'role',
      kind: 'exact',
      note: 'Palisade has one role, full access: its href matches every account',
    },
    {
      name: 'managing',
      kind: 'exact',
      note: 'no account is managed by another product: matches nothing',
    },
    MAX_RESULTS,
  ],
  'POST /login_users/authenticate': [
    {
      name: 'pce_fqdn',
      kind: 'accepted',
      note: 'this server answers for itself, whatever the name',
    },
    {
      name: 'one_time_password',
      kind: 'exact',
      note: 'refused: Palisade has no two-factor sign-in',
    },
  ],
}

/** `match_type=exact` makes a route's partial text filters exact (Palisade's addition). */
export const MATCH_TYPE: FilterSpec = {
  name: 'match_type',
  kind: 'enum',
  values: ['partial', 'exact'],
  palisade: true,
  note: 'exact makes the partial text filters exact',
}

/** The parameters of a route: its own, and match_type where it has a partial text filter. */
export function filtersOfRoute(route: string): readonly FilterSpec[] {
  const own = QUERY_FILTERS[route] ?? []
  return own.some((f) => f.kind === 'partial') ? [...own, MATCH_TYPE] : own
}
