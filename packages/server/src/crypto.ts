import { createHash, randomBytes, randomUUID, scrypt, timingSafeEqual } from 'node:crypto'

/** Passwords: scrypt (N=2^15, r=8, p=1, 16-byte salt), stored as a self-describing string. */
const N = 2 ** 15
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16)
  const key = await scryptAsync(password, salt)
  return `scrypt$${N}$8$1$${salt.toString('base64')}$${key.toString('base64')}`
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [alg, n, , , salt, key] = stored.split('$')
  if (alg !== 'scrypt' || !salt || !key || Number(n) !== N) return false
  const got = await scryptAsync(password, Buffer.from(salt, 'base64'))
  const want = Buffer.from(key, 'base64')
  return got.length === want.length && timingSafeEqual(got, want)
}

/** The hash of a password no one has: checked when there is no user, to cost what a user costs. */
let decoy: Promise<string> | undefined

/**
 * Whether `password` is the one `stored` hashes; with no stored hash (an unknown user), false
 * after the same scrypt, so the answer's timing does not tell which user names exist.
 */
export async function verifyUserPassword(
  password: string,
  stored: string | undefined,
): Promise<boolean> {
  decoy ??= hashPassword(randomSecret())
  const ok = await verifyPassword(password, stored ?? (await decoy))
  return stored !== undefined && ok
}

function scryptAsync(password: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, 64, { N, r: 8, p: 1, maxmem: 128 * N * 8 * 2 }, (e, k) =>
      e ? reject(e) : resolve(k),
    ),
  )
}

/** Random secrets (API keys, agent tokens, activation codes) carry 256 bits: a hash is enough. */
export const sha256 = (s: string) => createHash('sha256').update(s).digest('hex')
export const randomSecret = (bytes = 32) => randomBytes(bytes).toString('hex')
export const newUuid = () => randomUUID()

export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}
