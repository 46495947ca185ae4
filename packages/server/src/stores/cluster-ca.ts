/** The cluster's CA: one row, its key sealed (see cluster-ca.ts at the top of the server). */
import type { Db } from './db.js'

export interface StoredClusterCa {
  readonly cert: string
  readonly key_sealed: string
}

export async function storedClusterCa(db: Db): Promise<StoredClusterCa | undefined> {
  return db
    .selectFrom('cluster_ca')
    .select(['cert', 'key_sealed'])
    .where('id', '=', 1)
    .executeTakeFirst()
}

/**
 * Stores the CA unless one is there already: of two servers starting at once, the first insert
 * wins (the primary key decides, atomically) and the other reads the winner's.
 */
export async function insertClusterCa(db: Db, ca: StoredClusterCa, at: string): Promise<void> {
  await db
    .insertInto('cluster_ca')
    .values({ id: 1, ...ca, created_at: at })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute()
}
