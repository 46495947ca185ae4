import { describe, expect, it } from 'vitest'
import { uniqueViolation } from './unique-violation.js'

const coded = (code: string, message = 'refused') => Object.assign(new Error(message), { code })

describe('uniqueViolation', () => {
  it.each([
    ['PostgreSQL unique_violation', coded('23505'), true],
    ['SQLite unique constraint', coded('SQLITE_CONSTRAINT_UNIQUE'), true],
    ['SQLite primary key', coded('SQLITE_CONSTRAINT_PRIMARYKEY'), true],
    ['wrapped as a cause', new Error('insert failed', { cause: coded('23505') }), true],
    ['PostgreSQL foreign key violation', coded('23503'), false],
    ['SQLite not-null constraint', coded('SQLITE_CONSTRAINT_NOTNULL'), false],
    ['the store away', coded('57P01'), false],
    ['an error without a code', new Error('duplicate key value'), false],
    ['not an error', { code: '23505' }, false],
  ])('%s', (_name, err, want) => {
    expect(uniqueViolation(err)).toBe(want)
  })
})
