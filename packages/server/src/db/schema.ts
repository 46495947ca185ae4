import type { ColumnType, Generated } from 'kysely'

/** The store's tables. JSON documents are kept as text so both dialects store them alike. */
export interface Database {
  users: {
    id: Generated<number>
    org_id: number
    username: string
    password_hash: string
    created_at: string
    full_name: string | null
    time_zone: string | null
    last_login_on: string | null
    last_login_ip_address: string | null
    login_count: Generated<number>
    /** `local`, or `service_account` for a service account's principal (no password). */
    type: Generated<string>
  }
  api_keys: {
    id: Generated<number>
    user_id: number
    key_id: string
    secret_hash: string
    name: string
    created_at: string
    description: string | null
    /** After this the key no longer authenticates (null: never). */
    expires_at: string | null
    last_login_on: string | null
    created_by: string | null
  }
  labels: {
    id: Generated<number>
    org_id: number
    key: string
    value: string
    external_data_set: string | null
    external_data_reference: string | null
    created_at: string
    updated_at: string
  }
  /** Draft and active copies of every provisionable policy object (one row per object). */
  policy_objects: {
    org_id: number
    type: string
    id: string
    draft: string | null
    active: string | null
    draft_deleted: number
    updated_at: string
  }
  policy_versions: {
    org_id: number
    version: number
    commit_message: string
    created_at: string
    created_by: string
    snapshot: string
    object_counts: string
    workloads_affected: number
    /** What the provision changed (JSON list); null for versions made before it was kept. */
    modified: string | null
  }
  workloads: {
    id: string
    org_id: number
    name: string
    hostname: string
    managed: number
    agent_type: string
    os_platform: string
    enforcement_mode: string
    visibility_level: string
    labels: string
    interfaces: string
    external_data_set: string | null
    external_data_reference: string | null
    created_at: string
    updated_at: string
    description: string | null
    public_ip: string | null
    service_principal_name: string | null
    distinguished_name: string | null
    service_provider: string | null
    data_center: string | null
    data_center_zone: string | null
    os_id: string | null
    os_detail: string | null
    /** JSON list of interface names. */
    ignored_interface_names: string | null
    /** An unmanaged workload's `online` as its owner set it (1/0); null: not set. */
    online: number | null
    /** Why the last recompute could not use this row (JSON {reason, at}); null: it could. */
    policy_error: ColumnType<string | null, string | null | undefined, string | null>
  }
  agents: {
    id: string
    org_id: number
    workload_id: string
    token_hash: string
    status: string
    last_heartbeat_at: string | null
    applied_version: number | null
    applied_at: string | null
    applied_mode: string | null
    sync_state: string
    health: string
    survey: string
    created_at: string
    ruleset: string | null
    ruleset_at: string | null
    backend: string | null
    name: string | null
    description: string | null
    last_goodbye_at: string | null
    /** The pairing profile it activated with (null: activated before this was kept). */
    pairing_profile_id: ColumnType<number | null, number | null | undefined, number | null>
    target_release: string | null
    build: string | null
  }
  /** Agents whose workload was deleted by force: each is told to unpair when it next calls. */
  forgotten_agents: {
    id: string
    org_id: number
    token_hash: string
    hostname: string
    firewall_restore: string
    created_at: string
  }
  /** The host policy each managed workload should enforce; the agent long-polls it. */
  cluster_ca: {
    id: number
    cert: string
    key_sealed: string
    created_at: string
  }
  host_policies: {
    workload_id: string
    org_id: number
    version: number
    hash: string
    /** The policy as its agent is sent it (`PolicyDoc`): large sets by id. */
    policy: string
    /** The ids of the address sets it names (a JSON list). */
    set_ids: string
    updated_at: string
  }
  /** Shared address sets, by content id (see `address-set-refs.ts` in the protocol). */
  address_sets: {
    org_id: number
    id: string
    /** `{"v4": [...], "v6": [...]}` */
    addresses: string
    /** When the last host policy naming it stopped doing so; null while one does. */
    released_at: string | null
  }
  pairing_profiles: {
    id: Generated<number>
    org_id: number
    name: string
    enabled: number
    enforcement_mode: string
    visibility_level: string
    labels: string
    allowed_uses_per_key: number | null
    key_lifespan: number | null
    agent_type: string
    created_at: string
    updated_at: string
    description: string | null
    external_data_set: string | null
    external_data_reference: string | null
    /** The vendor's removed `log_traffic` (visibility_level decides): 1, 0 or unset. */
    log_traffic: number | null
    /** The `*_lock` flags as given, a JSON object. */
    locks: Generated<string>
    /** The CIDRs its agents may report addresses in, a JSON list; null: any address. */
    allowed_ip_ranges: ColumnType<string | null, string | null | undefined, string | null>
  }
  pairing_keys: {
    code_hash: string
    profile_id: number
    org_id: number
    created_at: string
    expires_at: string | null
    uses_left: number | null
  }
  events: {
    seq: Generated<number>
    uuid: string
    org_id: number
    event_type: string
    severity: string
    status: string | null
    timestamp: string
    created_by: string
    resource_changes: string
    notifications: string
    agent_id: string | null
  }
  /** Flow summaries from agents: one row per summary, deduplicated by the agent's uuid. */
  flow_summaries: {
    id: Generated<number>
    uuid: string
    org_id: number
    workload_id: string
    direction: string
    src_ip: string
    dst_ip: string
    src_port: number | null
    port: number | null
    proto: number
    icmp_type: number | null
    icmp_code: number | null
    policy_decision: string
    rule_href: string | null
    num_connections: number
    first_seen: string
    last_seen: string
    dropped_downstream: number
  }
  /** Async traffic queries (Explorer): parameters, state and the result as JSON. */
  traffic_queries: {
    id: string
    org_id: number
    status: string
    query_parameters: string
    result: string | null
    error: string | null
    rules: string | null
    matches_count: number
    flows_count: number
    created_by: string
    created_at: string
    updated_at: string
  }
  /** Virtual services bound to workloads; the port overrides as JSON. */
  service_bindings: {
    id: string
    org_id: number
    virtual_service_id: string
    workload_id: string
    port_overrides: string
    external_data_set: string | null
    external_data_reference: string | null
    created_at: string
  }
  label_dimensions: {
    id: string
    org_id: number
    key: string
    display_name: string
    display_info: string
    external_data_set: string | null
    external_data_reference: string | null
    created_at: string
    updated_at: string
    created_by: string
    updated_by: string
  }
  /** Per-org settings documents (`workloads`, `events`). */
  org_settings: {
    org_id: number
    name: string
    value: string
  }
  /** Async jobs (`Prefer: respond-async`) and their datafiles. */
  jobs: {
    id: string
    org_id: number
    job_type: string
    description: string
    status: string
    requested_at: string
    requested_by: string
    terminated_at: string | null
    data: string | null
  }
  /** A page of an async job's datafile: its items as JSON text, without the list's brackets. */
  job_chunks: {
    job_id: string
    seq: number
    items: string
  }
  service_accounts: {
    id: string
    org_id: number
    user_id: number
    name: string
    description: string
    permissions: string
    created_at: string
    updated_at: string
    created_by: string
  }
  /** Session login's auth tokens (single use, 30 s), by hash. */
  auth_tokens: {
    token_hash: string
    user_id: number
    expires_at: string
  }
  /** API sessions made from an auth token (Basic `user_<id>:<session token>`), by hash. */
  api_sessions: {
    token_hash: string
    user_id: number
    created_at: string
    last_used_at: string
  }
  /** Console sessions: the hash of the cookie's id, and the CSRF token changes must carry. */
  sessions: {
    id_hash: string
    user_id: number
    csrf: string
    created_at: string
    expires_at: string
  }
}
