/**
 * The store: every read and write of the server, one query layer over SQLite and PostgreSQL.
 *
 * - Policy objects keep a draft and an active copy in one row; writes go to the draft, and
 *   provisioning copies drafts to active and records an immutable version with the whole
 *   active snapshot.
 * - Every change made through the API writes its audit event in the same transaction, with who
 *   did it and each changed field before and after; events are never updated or deleted.
 * - Secrets (passwords, API keys, agent tokens, activation codes) are stored only as hashes.
 */
import type { Kysely } from 'kysely'
import { resourceChange } from './audit.js'
import { now } from './clock.js'
import { recordEvent } from './stores/events.js'
import type { Database } from './db/schema.js'
import { hashPassword, randomSecret, sha256 } from './crypto.js'
import { DEFAULT_FIREWALL_SETTINGS_DOC } from './policy-docs.js'
import type { Doc } from './validate.js'
import { userHref } from './hrefs.js'

export interface Bootstrap {
  readonly org_id: number
  readonly username: string
  readonly password: string
  readonly api_user: string
  readonly api_secret: string
}

/** Creates org 1 with an admin user and an API key, once; returns the secrets to hand out. */
export async function bootstrapOrg(db: Kysely<Database>): Promise<Bootstrap | undefined> {
  const existing = await db.selectFrom('users').select('id').executeTakeFirst()
  if (existing) return undefined
  const password = randomSecret(12)
  const keyId = `api_${randomSecret(8)}`
  const secret = randomSecret(32)
  return db.transaction().execute(async (tx) => {
    const user = await tx
      .insertInto('users')
      .values({
        org_id: 1,
        username: 'admin',
        password_hash: await hashPassword(password),
        created_at: now(),
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    await tx
      .insertInto('api_keys')
      .values({
        user_id: user.id,
        key_id: keyId,
        secret_hash: sha256(secret),
        name: 'bootstrap',
        created_at: now(),
      })
      .execute()
    const t = now()
    const seed = async (type: string, id: string, doc: Doc) =>
      tx
        .insertInto('policy_objects')
        .values({
          org_id: 1,
          type,
          id,
          draft: JSON.stringify(doc),
          active: JSON.stringify(doc),
          draft_deleted: 0,
          updated_at: t,
        })
        .execute()
    await seed('firewall_settings', 'firewall_settings', DEFAULT_FIREWALL_SETTINGS_DOC)
    await seed('ip_lists', '1', {
      name: 'Any (0.0.0.0/0 and ::/0)',
      description: '',
      ip_ranges: [{ from_ip: '0.0.0.0/0' }, { from_ip: '::/0' }],
      created_at: t,
      updated_at: t,
    })
    await seed('services', '1', {
      name: 'All Services',
      description: '',
      service_ports: [{ proto: -1 }],
      created_at: t,
      updated_at: t,
    })
    await recordEvent(tx, 1, {
      event_type: 'user.create',
      created_by: { system: {} },
      resource_changes: [
        resourceChange('user', userHref(user.id), 'create', undefined, { username: 'admin' }),
      ],
    })
    return { org_id: 1, username: 'admin', password, api_user: keyId, api_secret: secret }
  })
}
