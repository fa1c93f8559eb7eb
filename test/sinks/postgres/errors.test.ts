import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { test } from 'node:test'
import { ErrorCodes, kindOf } from '../../../src/errors.ts'
import { classifyPgError, toSinkError } from '../../../src/postgres/errors.ts'

test('SQLSTATE classes map to error kinds', () => {
  const cases: [string | undefined, string][] = [
    ['08006', 'retriable'], // connection failure
    ['40001', 'retriable'], // serialization failure
    ['40P01', 'retriable'], // deadlock
    ['53300', 'retriable'], // too many connections
    ['57P01', 'retriable'], // admin shutdown
    ['57P03', 'retriable'], // cannot connect now (starting up)
    ['57014', 'retriable'], // statement timeout
    ['55P03', 'retriable'], // lock not available
    ['22P05', 'poison'], // \u0000 in jsonb
    ['22P02', 'poison'], // invalid text representation
    ['22003', 'poison'], // numeric out of range
    ['23502', 'poison'], // not null
    ['54000', 'poison'], // program limit (index row too large)
    ['28P01', 'fatal'], // bad password
    ['3D000', 'fatal'], // unknown database
    ['42P01', 'fatal'], // undefined table
    ['42501', 'fatal'], // insufficient privilege
    ['42703', 'fatal'], // undefined column
    ['58P01', 'fatal'], // undefined file: CREATE EXTENSION of an extension that is not installed
    ['58030', 'retriable'], // I/O error
    [undefined, 'retriable']
  ]
  for (const [code, kind] of cases) {
    assert.equal(classifyPgError(code === undefined ? new Error('socket') : { code }), kind, String(code))
  }
  assert.equal(classifyPgError({ code: 'ECONNREFUSED' }), 'retriable')
})

test('a missing or unwritable path is fatal (waiting cannot heal it); a full disk or a refused connection is not', async () => {
  const missing = await readFile('/nonexistent/sfm/vectors.lock').catch((error: unknown) => error)
  assert.equal(kindOf(missing), 'fatal')
  for (const code of ['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EISDIR']) {
    assert.equal(kindOf(Object.assign(new Error(code), { code, syscall: 'open', path: '/x' })), 'fatal', code)
  }
  assert.equal(kindOf(Object.assign(new Error('full'), { code: 'ENOSPC', syscall: 'write', path: '/x' })), 'retriable')
  assert.equal(kindOf(Object.assign(new Error('refused'), { code: 'ECONNREFUSED', syscall: 'connect' })), 'retriable')
})

test('toSinkError keeps the cause and only safe details', () => {
  const pgError = Object.assign(new Error('null value in column "namespace" violates not-null constraint'), {
    code: '23502',
    column: 'namespace',
    table: 'memories',
    detail: 'Failing row contains (secret payload)'
  })
  const error = toSinkError(pgError, 'write', { index: 3 })
  assert.equal(error.kind, 'poison')
  assert.equal(error.code, ErrorCodes.SINK_REJECTED)
  assert.equal(error.cause, pgError)
  assert.deepEqual(error.details, { index: 3, sqlstate: '23502', table: 'memories', column: 'namespace' })
  assert.equal(toSinkError({ code: '57014' }, 'write').code, ErrorCodes.TIMEOUT)
})
