/**
 * The CA of a cluster of servers on one database. Agents pin one CA, so any server of the
 * cluster can answer them: the first server to start makes the CA and stores it in the
 * database; every server then issues its own certificate with it (see `ensureTlsFromCa`).
 *
 * The CA's private key is stored sealed: AES-256-GCM under a key derived (scrypt) from the
 * cluster secret, a file each server is given and the database never sees. Reading the
 * database (a backup, a replica, its administrator) does not let one pose as the server to the
 * agents; a changed sealed key fails GCM's check and is refused.
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import type { Kysely } from 'kysely'
import { now } from './clock.js'
import type { Database } from './db/schema.js'
import { insertClusterCa, storedClusterCa } from './stores/cluster-ca.js'
import type { CaPem } from './tls.js'
import { makeCa } from './tls.js'

const SEAL = 'aes-256-gcm$scrypt'
const SCRYPT = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 }

function deriveKey(secret: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(secret, salt, 32, SCRYPT, (e, k) => (e ? reject(e) : resolve(k))),
  )
}

/** `text` encrypted and authenticated under `secret`, as one self-describing string. */
export async function seal(text: string, secret: string): Promise<string> {
  const salt = randomBytes(16)
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', await deriveKey(secret, salt), iv)
  const body = Buffer.concat([cipher.update(text, 'utf8'), cipher.final()])
  return [SEAL, salt, iv, cipher.getAuthTag(), body]
    .map((p) => (typeof p === 'string' ? p : p.toString('base64')))
    .join('$')
}

/** What `seal` sealed; throws when the secret is another or the text was changed. */
export async function unseal(sealed: string, secret: string): Promise<string> {
  const parts = sealed.split('$')
  if (parts.length !== 6 || `${parts[0]}$${parts[1]}` !== SEAL)
    throw new Error('the sealed CA key in the database is not in a form this server knows')
  const [salt, iv, tag, body] = parts.slice(2).map((p) => Buffer.from(p, 'base64')) as Buffer[]
  const decipher = createDecipheriv(
    'aes-256-gcm',
    await deriveKey(secret, salt as Buffer),
    iv as Buffer,
  )
  decipher.setAuthTag(tag as Buffer)
  try {
    return Buffer.concat([decipher.update(body as Buffer), decipher.final()]).toString('utf8')
  } catch (e) {
    throw new Error(
      'the cluster secret does not open the CA key in the database: give every server of the cluster the same --cluster-secret-file',
      { cause: e },
    )
  }
}

/**
 * The cluster secret from its file: private to the server's user (mode 0600 or stricter), and
 * long enough to be worth a key.
 */
export async function readClusterSecret(file: string): Promise<string> {
  const st = await stat(file).catch((e: Error) => {
    throw new Error(`cannot read the cluster secret file ${file}: ${e.message}`, { cause: e })
  })
  if ((st.mode & 0o077) !== 0)
    throw new Error(
      `the cluster secret file ${file} can be read by other users (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it`,
    )
  const secret = (await readFile(file, 'utf8')).trim()
  if (secret.length < 32)
    throw new Error(
      `the cluster secret in ${file} is too short (${secret.length} characters, at least 32): make one with \`openssl rand -hex 32\``,
    )
  return secret
}

/**
 * The cluster's CA: the one in the database, or, on the first start of the first server, a new
 * one stored there. Two servers starting at once both may make one; the store keeps the first
 * and both use it.
 */
export async function clusterCa(db: Kysely<Database>, secret: string): Promise<CaPem> {
  let stored = await storedClusterCa(db)
  if (!stored) {
    const made = await makeCa()
    await insertClusterCa(
      db,
      { cert: made.certPem, key_sealed: await seal(made.keyPem, secret) },
      now(),
    )
    stored = await storedClusterCa(db)
    if (!stored) throw new Error('the cluster CA was stored but cannot be read back')
  }
  return { certPem: stored.cert, keyPem: await unseal(stored.key_sealed, secret) }
}
