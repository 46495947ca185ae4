/**
 * Whether an error is the store refusing a row that would repeat a unique key: another request
 * made or renamed the same thing first, after this one looked. The routes check for duplicates
 * and answer 406 with the vendor's token; what gets past that check in a race is a 409 the
 * client can act on (read again, retry if still wanted), not a 500. Pure.
 */
export function uniqueViolation(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code
    // PostgreSQL's unique_violation; better-sqlite3's extended result codes
    if (code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE') return true
    if (code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return true
  }
  return false
}
