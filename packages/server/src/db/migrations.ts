import type { Kysely, Migration, MigrationProvider } from 'kysely'

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
  '0004_agent_upgrade': {
    async up(db: Kysely<unknown>) {
      // The release an upgrade order names, and the build the agent last said it runs (JSON).
      await db.schema.alterTable('agents').addColumn('target_release', 'text').execute()
      await db.schema.alterTable('agents').addColumn('build', 'text').execute()
    },
  },
})

export const migrationProvider = (dialect: 'sqlite' | 'postgres'): MigrationProvider => ({
  getMigrations: () => Promise.resolve(migrationsFor(dialect === 'postgres')),
})
