import type { Kysely } from 'kysely'
import { resourceChange } from './audit.js'
import { now } from './clock.js'
import { hashPassword, randomSecret, sha256 } from './crypto.js'
import type { Database } from './db/schema.js'
import { userHref } from './hrefs.js'
import { DEFAULT_FIREWALL_SETTINGS_DOC } from './policy/policy-model.js'
import type { PolicyType } from './policy/types.js'
import { DEFAULT_DIMENSION_NAMES } from './db/default-label-types.js'
import { recordEvent } from './stores/events.js'
import { insertDimension } from './stores/label-dimensions.js'
import { insertObject } from './stores/policy-objects.js'
import { anyUser, insertApiKey, insertUser } from './stores/users.js'
import type { Doc } from './validate.js'

export interface Bootstrap {
  readonly org_id: number
  readonly username: string
  readonly password: string
  readonly api_user: string
  readonly api_secret: string
}

/** Creates org 1 with an admin user and an API key, once; returns the secrets to hand out. */
export async function bootstrapOrg(db: Kysely<Database>): Promise<Bootstrap | undefined> {
  if (await anyUser(db)) return undefined
  const password = randomSecret(12)
  const keyId = `api_${randomSecret(8)}`
  const secret = randomSecret(32)
  return db.transaction().execute(async (tx) => {
    const user = await insertUser(tx, {
      org_id: 1,
      username: 'admin',
      password_hash: await hashPassword(password),
      created_at: now(),
    })
    await insertApiKey(tx, {
      user_id: user,
      key_id: keyId,
      secret_hash: sha256(secret),
      name: 'bootstrap',
      created_at: now(),
    })
    const t = now()
    const seed = (type: PolicyType, id: string, doc: Doc) =>
      insertObject(tx, { org_id: 1, type, id, draft: doc, active: doc, updated_at: t })
    await seed('firewall_settings', 'firewall_settings', DEFAULT_FIREWALL_SETTINGS_DOC)
    for (const key of Object.keys(DEFAULT_DIMENSION_NAMES))
      await insertDimension(tx, { org: 1, key, by: { system: {} }, at: t })
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
        resourceChange('user', userHref(user), 'create', undefined, { username: 'admin' }),
      ],
    })
    return { org_id: 1, username: 'admin', password, api_user: keyId, api_secret: secret }
  })
}
