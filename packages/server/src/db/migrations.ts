import type { Kysely, Migration, MigrationProvider } from 'kysely'
import { sql } from 'kysely'
import { randomUUID } from 'node:crypto'
import { DEFAULT_DIMENSION_NAMES } from './default-label-types.js'
import { createPartition, dayOf, daysFrom } from './flow-partition-ddl.js'
import { HOST_POLICIES_CHANNEL } from './pg-notifications.js'

/**
 * One set of migrations for SQLite and PostgreSQL: portable DDL, except that an auto-numbered
 * key is `serial` in PostgreSQL and `integer primary key autoincrement` in SQLite.
 */
const migrationsFor = (isPg: boolean): Record<string, Migration> => ({
  '0001_initial': {
    async up(db: Kysely<unknown>) {
      const autoId = (pg: boolean) => (pg ? 'serial' : 'integer')
      await db.schema
        .createTable('users')
        .addColumn('id', autoId(isPg), (c) =>
          isPg ? c.primaryKey() : c.primaryKey().autoIncrement(),
        )
        .addColumn('org_id', 'integer', (c) => c.notNull())
        .addColumn('username', 'text', (c) => c.notNull().unique())
        .addColumn('password_hash', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('api_keys')
        .addColumn('id', autoId(isPg), (c) =>
          isPg ? c.primaryKey() : c.primaryKey().autoIncrement(),
        )
        .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id'))
        .addColumn('key_id', 'text', (c) => c.notNull().unique())
        .addColumn('secret_hash', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('labels')
        .addColumn('id', autoId(isPg), (c) =>
          isPg ? c.primaryKey() : c.primaryKey().autoIncrement(),
        )
        .addColumn('org_id', 'integer', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addColumn('external_data_set', 'text')
        .addColumn('external_data_reference', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('labels_org_key_value', ['org_id', 'key', 'value'])
        .execute()
      await db.schema
        .createTable('policy_objects')
        .addColumn('org_id', 'integer', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('draft', 'text')
        .addColumn('active', 'text')
        .addColumn('draft_deleted', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('policy_objects_pk', ['org_id', 'type', 'id'])
        .execute()
      await db.schema
        .createTable('policy_versions')
        .addColumn('org_id', 'integer', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('commit_message', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('snapshot', 'text', (c) => c.notNull())
        .addColumn('object_counts', 'text', (c) => c.notNull())
        .addColumn('workloads_affected', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('policy_versions_pk', ['org_id', 'version'])
        .execute()
      await db.schema
        .createTable('workloads')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'integer', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('hostname', 'text', (c) => c.notNull())
        .addColumn('managed', 'integer', (c) => c.notNull())
        .addColumn('agent_type', 'text', (c) => c.notNull())
        .addColumn('os_platform', 'text', (c) => c.notNull())
        .addColumn('enforcement_mode', 'text', (c) => c.notNull())
        .addColumn('visibility_level', 'text', (c) => c.notNull())
        .addColumn('labels', 'text', (c) => c.notNull())
        .addColumn('interfaces', 'text', (c) => c.notNull())
        .addColumn('external_data_set', 'text')
        .addColumn('external_data_reference', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('agents')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'integer', (c) => c.notNull())
        .addColumn('workload_id', 'text', (c) => c.notNull().references('workloads.id'))
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('last_heartbeat_at', 'text')
        .addColumn('applied_version', 'integer')
        .addColumn('applied_at', 'text')
        .addColumn('applied_mode', 'text')
        .addColumn('sync_state', 'text', (c) => c.notNull())
        .addColumn('health', 'text', (c) => c.notNull())
        .addColumn('survey', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('host_policies')
        .addColumn('workload_id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'integer', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .addColumn('policy', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('pairing_profiles')
        .addColumn('id', autoId(isPg), (c) =>
          isPg ? c.primaryKey() : c.primaryKey().autoIncrement(),
        )
        .addColumn('org_id', 'integer', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('enabled', 'integer', (c) => c.notNull())
        .addColumn('enforcement_mode', 'text', (c) => c.notNull())
        .addColumn('visibility_level', 'text', (c) => c.notNull())
        .addColumn('labels', 'text', (c) => c.notNull())
        .addColumn('allowed_uses_per_key', 'integer')
        .addColumn('key_lifespan', 'integer')
        .addColumn('agent_type', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('pairing_keys')
        .addColumn('code_hash', 'text', (c) => c.primaryKey())
        .addColumn('profile_id', 'integer', (c) => c.notNull())
        .addColumn('org_id', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text')
        .addColumn('uses_left', 'integer')
        .execute()
      await db.schema
        .createTable('events')
        .addColumn('seq', autoId(isPg), (c) =>
          isPg ? c.primaryKey() : c.primaryKey().autoIncrement(),
        )
        .addColumn('uuid', 'text', (c) => c.notNull().unique())
        .addColumn('org_id', 'integer', (c) => c.notNull())
        .addColumn('event_type', 'text', (c) => c.notNull())
        .addColumn('severity', 'text', (c) => c.notNull())
        .addColumn('status', 'text')
        .addColumn('timestamp', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('resource_changes', 'text', (c) => c.notNull())
        .addColumn('notifications', 'text', (c) => c.notNull())
        .addColumn('agent_id', 'text')
        .execute()
      await db.schema
        .createIndex('events_org_time')
        .on('events')
        .columns(['org_id', 'timestamp'])
        .execute()
    },
  },
  '0002_traffic': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('flow_summaries')
        .addColumn('id', isPg ? 'bigserial' : 'integer', (c) =>
          isPg ? c.primaryKey() : c.primaryKey().autoIncrement(),
        )
        .addColumn('uuid', 'text', (c) => c.notNull().unique())
        .addColumn('org_id', 'integer', (c) => c.notNull())
        .addColumn('workload_id', 'text', (c) => c.notNull())
        .addColumn('direction', 'text', (c) => c.notNull())
        .addColumn('src_ip', 'text', (c) => c.notNull())
        .addColumn('dst_ip', 'text', (c) => c.notNull())
        .addColumn('src_port', 'integer')
        .addColumn('port', 'integer')
        .addColumn('proto', 'integer', (c) => c.notNull())
        .addColumn('icmp_type', 'integer')
        .addColumn('icmp_code', 'integer')
        .addColumn('policy_decision', 'text', (c) => c.notNull())
        .addColumn('rule_href', 'text')
        .addColumn('num_connections', 'integer', (c) => c.notNull())
        .addColumn('first_seen', 'text', (c) => c.notNull())
        .addColumn('last_seen', 'text', (c) => c.notNull())
        .addColumn('dropped_downstream', 'integer', (c) => c.notNull())
        .execute()
      await db.schema
        .createIndex('flow_summaries_org_time')
        .on('flow_summaries')
        .columns(['org_id', 'last_seen'])
        .execute()
      await db.schema
        .createTable('traffic_queries')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'integer', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('query_parameters', 'text', (c) => c.notNull())
        .addColumn('result', 'text')
        .addColumn('error', 'text')
        .addColumn('rules', 'text')
        .addColumn('matches_count', 'integer', (c) => c.notNull())
        .addColumn('flows_count', 'integer', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute()
      // The live ruleset the agent last read (every firewall on the host), for impact and explain.
      await db.schema.alterTable('agents').addColumn('ruleset', 'text').execute()
      await db.schema.alterTable('agents').addColumn('ruleset_at', 'text').execute()
      await db.schema.alterTable('agents').addColumn('backend', 'text').execute()
    },
  },
  '0003_sessions': {
    async up(db: Kysely<unknown>) {
      // Console sign-in: only the hash of a session id is stored, like every other secret.
      await db.schema
        .createTable('sessions')
        .addColumn('id_hash', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'integer', (c) => c.notNull())
        .addColumn('csrf', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .execute()
    },
  },
  '0004_policy_semantics': {
    async up(db: Kysely<unknown>) {
      // Which workloads run a virtual service (not provisioned: a binding applies at once).
      await db.schema
        .createTable('service_bindings')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'integer', (c) => c.notNull())
        .addColumn('virtual_service_id', 'text', (c) => c.notNull())
        .addColumn('workload_id', 'text', (c) => c.notNull())
        .addColumn('port_overrides', 'text', (c) => c.notNull())
        .addColumn('external_data_set', 'text')
        .addColumn('external_data_reference', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema.alterTable('workloads').addColumn('description', 'text').execute()
      // What a pairing profile says beyond what activation applies: kept and shown as given.
      for (const column of ['description', 'external_data_set', 'external_data_reference'])
        await db.schema.alterTable('pairing_profiles').addColumn(column, 'text').execute()
      await db.schema.alterTable('pairing_profiles').addColumn('log_traffic', 'integer').execute()
      await db.schema
        .alterTable('pairing_profiles')
        .addColumn('locks', 'text', (c) => c.notNull().defaultTo('{}'))
        .execute()
    },
  },
  '0005_api_compat': {
    async up(db: Kysely<unknown>) {
      // Label types (the vendor's label dimensions): one per key, made on a label's first use.
      await db.schema
        .createTable('label_dimensions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'integer', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('display_name', 'text', (c) => c.notNull())
        .addColumn('display_info', 'text', (c) => c.notNull())
        .addColumn('external_data_set', 'text')
        .addColumn('external_data_reference', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('updated_by', 'text', (c) => c.notNull())
        .addUniqueConstraint('label_dimensions_org_key', ['org_id', 'key'])
        .execute()
      // The four types every org starts with, and the types of the labels that exist already.
      const { rows: keys } = await sql<{ org_id: number; key: string }>`
        select distinct org_id, key from labels
        union select distinct org_id, 'role' from users union select distinct org_id, 'app' from users
        union select distinct org_id, 'env' from users union select distinct org_id, 'loc' from users`.execute(
        db,
      )
      const t = new Date().toISOString()
      for (const k of keys)
        await sql`insert into label_dimensions (id, org_id, key, display_name, display_info,
            created_at, updated_at, created_by, updated_by)
          values (${randomUUID()}, ${k.org_id}, ${k.key}, ${DEFAULT_DIMENSION_NAMES[k.key] ?? k.key},
            '{}', ${t}, ${t}, '{"system":{}}', '{"system":{}}')`.execute(db)
      // Per-org settings (workload liveness, event retention): one JSON document per name.
      await db.schema
        .createTable('org_settings')
        .addColumn('org_id', 'integer', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('org_settings_pk', ['org_id', 'name'])
        .execute()
      // Async jobs and their datafiles, kept in the store so any server node answers a poll.
      await db.schema
        .createTable('jobs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'integer', (c) => c.notNull())
        .addColumn('job_type', 'text', (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('requested_at', 'text', (c) => c.notNull())
        .addColumn('requested_by', 'text', (c) => c.notNull())
        .addColumn('terminated_at', 'text')
        .addColumn('data', 'text')
        .execute()
      await db.schema
        .createIndex('jobs_org_time')
        .on('jobs')
        .columns(['org_id', 'requested_at'])
        .execute()
      // Users: what /users shows, and service accounts (a user of type service_account).
      for (const col of ['full_name', 'time_zone', 'last_login_on', 'last_login_ip_address'])
        await db.schema.alterTable('users').addColumn(col, 'text').execute()
      await db.schema
        .alterTable('users')
        .addColumn('login_count', 'integer', (c) => c.notNull().defaultTo(0))
        .execute()
      await db.schema
        .alterTable('users')
        .addColumn('type', 'text', (c) => c.notNull().defaultTo('local'))
        .execute()
      await db.schema
        .createTable('service_accounts')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'integer', (c) => c.notNull())
        .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('permissions', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .execute()
      for (const col of ['description', 'expires_at', 'last_login_on', 'created_by'])
        await db.schema.alterTable('api_keys').addColumn(col, 'text').execute()
      // Session login: the short auth token and the session it is exchanged for (hashes only).
      await db.schema
        .createTable('auth_tokens')
        .addColumn('token_hash', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'integer', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('api_sessions')
        .addColumn('token_hash', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('last_used_at', 'text', (c) => c.notNull())
        .execute()
      // VENs: a name and description of their own, and when the agent last said goodbye.
      for (const col of ['name', 'description', 'last_goodbye_at'])
        await db.schema.alterTable('agents').addColumn(col, 'text').execute()
      // Workload fields clients send and read back (stored; see docs/api-compatibility.md).
      for (const col of [
        'public_ip',
        'service_principal_name',
        'distinguished_name',
        'service_provider',
        'data_center',
        'data_center_zone',
        'os_id',
        'os_detail',
        'ignored_interface_names',
      ])
        await db.schema.alterTable('workloads').addColumn(col, 'text').execute()
      // Whether an unmanaged workload is online, as its owner says (agents report their own).
      await db.schema.alterTable('workloads').addColumn('online', 'integer').execute()
      // What each provision changed, as `modified_objects` lists it.
      await db.schema.alterTable('policy_versions').addColumn('modified', 'text').execute()
    },
  },
  '0006_input_containment': {
    async up(db) {
      // Why a recompute could not use a workload's stored row (JSON {reason, at}); null: it could.
      await db.schema.alterTable('workloads').addColumn('policy_error', 'text').execute()
      // The CIDRs a profile's agents may report addresses in (JSON list); null: any address.
      await db.schema
        .alterTable('pairing_profiles')
        .addColumn('allowed_ip_ranges', 'text')
        .execute()
      // The pairing profile an agent activated with: its allowed_ip_ranges bound what it reports.
      await db.schema.alterTable('agents').addColumn('pairing_profile_id', 'integer').execute()
      // Agents whose workload an admin deleted by force: told to unpair when they next call.
      await db.schema
        .createTable('forgotten_agents')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'integer', (c) => c.notNull())
        .addColumn('token_hash', 'text', (c) => c.notNull())
        .addColumn('hostname', 'text', (c) => c.notNull())
        .addColumn('firewall_restore', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute()
    },
  },
  '0007_datafile_chunks': {
    async up(db: Kysely<unknown>) {
      // An async job's datafile, a page of items per row: built and sent a page at a time, so
      // a large collection is never held whole in memory. (The jobs row's `data` is unused.)
      await db.schema
        .createTable('job_chunks')
        .addColumn('job_id', 'text', (c) => c.notNull())
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('items', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('job_chunks_pk', ['job_id', 'seq'])
        .execute()
      // An org's events newest first, a page at a time: without it each page sorted every event
      // of the org (SQLite chose the time index for org_id, then sorted by seq).
      await db.schema
        .createIndex('events_org_seq')
        .on('events')
        .columns(['org_id', 'seq'])
        .execute()
    },
  },
  '0008_cluster': {
    async up(db: Kysely<unknown>) {
      // The CA every server of a cluster signs its certificate with (its key sealed, see
      // cluster-ca.ts): one row, made by the first server that starts.
      await db.schema
        .createTable('cluster_ca')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('cert', 'text', (c) => c.notNull())
        .addColumn('key_sealed', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute()
      if (!isPg) return
      // Servers sharing the database learn of new host policies at once (LISTEN/NOTIFY): every
      // write announces itself when it commits, whichever server made it.
      await sql`create function palisade_host_policies_changed() returns trigger
        language plpgsql as $$ begin perform pg_notify(${sql.lit(HOST_POLICIES_CHANNEL)}, ''); return null; end $$`.execute(
        db,
      )
      await sql`create trigger host_policies_changed after insert or update or delete
        on host_policies for each statement execute function palisade_host_policies_changed()`.execute(
        db,
      )
    },
  },
  '0009_agent_upgrade': {
    async up(db: Kysely<unknown>) {
      // The release an upgrade order names, and the build the agent last said it runs (JSON).
      await db.schema.alterTable('agents').addColumn('target_release', 'text').execute()
      await db.schema.alterTable('agents').addColumn('build', 'text').execute()
    },
  },
  '0010_flow_partitions': {
    async up(db: Kysely<unknown>) {
      // SQLite keeps one table: the embedded store of a small estate. PostgreSQL's is partitioned
      // by day of last_seen (see flow-partition-ddl.ts); the summaries already stored move over.
      if (!isPg) return
      await sql`create table flow_summaries_by_day (
        id bigserial not null,
        uuid text not null,
        org_id integer not null,
        workload_id text not null,
        direction text not null,
        src_ip text not null,
        dst_ip text not null,
        src_port integer,
        port integer,
        proto integer not null,
        icmp_type integer,
        icmp_code integer,
        policy_decision text not null,
        rule_href text,
        num_connections integer not null,
        first_seen text collate "C" not null,
        last_seen text collate "C" not null,
        dropped_downstream integer not null
      ) partition by range (last_seen)`.execute(db)
      await sql`alter table flow_summaries rename to flow_summaries_unpartitioned`.execute(db)
      await sql`alter table flow_summaries_by_day rename to flow_summaries`.execute(db)
      const stored = await sql<{ day: string }>`select distinct substr(last_seen, 1, 10) as day
        from flow_summaries_unpartitioned`.execute(db)
      const today = dayOf(new Date())
      const days = new Set([...stored.rows.map((r) => r.day), ...daysFrom(today, 3)])
      for (const day of days) await createPartition(day).execute(db)
      const columns = sql.raw(FLOW_COLUMNS.join(', '))
      await sql`insert into flow_summaries (${columns})
        select ${columns} from flow_summaries_unpartitioned`.execute(db)
      await sql`select setval('flow_summaries_by_day_id_seq',
        greatest(1, (select max(id) from flow_summaries_unpartitioned)))`.execute(db)
      await sql`drop table flow_summaries_unpartitioned`.execute(db)
      await sql`alter sequence flow_summaries_by_day_id_seq rename to flow_summaries_id_seq`.execute(
        db,
      )
      // A uniqueness index of a partitioned table includes its key: a re-sent batch (same uuid,
      // same times) is still stored once.
      await sql`create unique index flow_summaries_uuid_day on flow_summaries (uuid, last_seen)`.execute(
        db,
      )
      await sql`create index flow_summaries_org_time on flow_summaries (org_id, last_seen)`.execute(
        db,
      )
      // A query with label or workload actors reads the summaries of their addresses only
      // (traffic/address-filter.ts): over millions of rows, by index rather than by a scan.
      await sql`create index flow_summaries_src on flow_summaries (src_ip)`.execute(db)
      await sql`create index flow_summaries_dst on flow_summaries (dst_ip)`.execute(db)
    },
  },
  '0011_address_sets': {
    async up(db: Kysely<unknown>) {
      // Large peer sets stored once and named by content id in the host policies that use them
      // (address-set-refs.ts). A set no policy names any more is kept a while (released_at) so
      // agents that hold it can still get a delta from it, then deleted.
      await db.schema
        .createTable('address_sets')
        .addColumn('org_id', 'integer', (c) => c.notNull())
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('addresses', 'text', (c) => c.notNull())
        .addColumn('released_at', 'text')
        .addPrimaryKeyConstraint('address_sets_pk', ['org_id', 'id'])
        .execute()
      // The sets each host policy names (JSON list): who may fetch a set, and which are in use.
      await db.schema
        .alterTable('host_policies')
        .addColumn('set_ids', 'text', (c) => c.notNull().defaultTo('[]'))
        .execute()
    },
  },
})

/** Every column of flow_summaries, as 0002 made them. */
const FLOW_COLUMNS = [
  'id',
  'uuid',
  'org_id',
  'workload_id',
  'direction',
  'src_ip',
  'dst_ip',
  'src_port',
  'port',
  'proto',
  'icmp_type',
  'icmp_code',
  'policy_decision',
  'rule_href',
  'num_connections',
  'first_seen',
  'last_seen',
  'dropped_downstream',
]

export const migrationProvider = (dialect: 'sqlite' | 'postgres'): MigrationProvider => ({
  getMigrations: () => Promise.resolve(migrationsFor(dialect === 'postgres')),
})
