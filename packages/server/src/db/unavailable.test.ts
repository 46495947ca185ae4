import { describe, expect, it } from 'vitest'
import { storeUnavailable } from './unavailable.js'

const coded = (code: string, message = 'x') => Object.assign(new Error(message), { code })

describe('storeUnavailable', () => {
  it.each([
    [
      'PostgreSQL shutting down',
      coded('57P01', 'terminating connection due to administrator command'),
    ],
    ['PostgreSQL starting up', coded('57P03', 'the database system is starting up')],
    ['a refused connection', coded('ECONNREFUSED')],
    ['a unix socket gone', coded('ENOENT', 'connect ENOENT /run/pg/.s.PGSQL.5432')],
    ['a connection cut mid-query', new Error('Connection terminated unexpectedly')],
    ['a connect timeout', new Error('timeout exceeded when trying to connect')],
    ['a locked SQLite file', coded('SQLITE_BUSY', 'database is locked')],
    ['one wrapped as a cause', new Error('migrating failed', { cause: coded('57P01') })],
  ])('%s is the store being away', (_what, err) => {
    expect(storeUnavailable(err)).toMatch(/retry shortly/)
  })

  it.each([
    ['a unique violation', coded('23505', 'duplicate key value')],
    ['a SQLite constraint', coded('SQLITE_CONSTRAINT_UNIQUE')],
    ['a plain bug', new TypeError('x is undefined')],
    ['not an error', 'Connection terminated'],
  ])('%s is not', (_what, err) => {
    expect(storeUnavailable(err)).toBeUndefined()
  })
})
