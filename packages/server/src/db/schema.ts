import type { Generated } from 'kysely'

/** The store's tables. JSON documents are kept as text so both dialects store them alike. */
export interface Database {
  users: {
    id: Generated<number>
    org_id: number
    username: string
    password_hash: string
    created_at: string
  }
  api_keys: {
    id: Generated<number>
    user_id: number
    key_id: string
    secret_hash: string
    name: string
    created_at: string
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
    target_release: string | null
    build: string | null
  }
  /** The host policy each managed workload should enforce; the agent long-polls it. */
  host_policies: {
    workload_id: string
    org_id: number
    version: number
    hash: string
    policy: string
    updated_at: string
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
  /** Console sessions: the hash of the cookie's id, and the CSRF token changes must carry. */
  sessions: {
    id_hash: string
    user_id: number
    csrf: string
    created_at: string
    expires_at: string
  }
}
