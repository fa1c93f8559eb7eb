import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import Ajv2020 from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'
import type { MemoryEvent } from '../src/memory/event.ts'
import { loadSchema, loadSubject } from '../src/schemas.ts'

async function memoryEventValidator() {
  const loaded = await loadSchema('memory.event')
  // ajv is CommonJS: under NodeNext the class is the default export's `default` (it is also module.exports).
  const ajv = new Ajv2020.default({ allErrors: true, strict: true, useDefaults: true })
  addFormats.default(ajv)
  return { loaded, validate: ajv.compile<MemoryEvent>(loaded.schema) }
}

const base = {
  event_id: '6f1c1a8e-4f5e-4b8e-9a43-2b8f1d1e7c10',
  id: 'mem-1',
  namespace: 'default',
  type: 'note',
  timestamp: '2025-03-01T12:00:00.123456+02:00',
  payload: { text: 'hello' }
}

test('memory.event: subject metadata and latest version', async () => {
  const info = await loadSubject('memory.event')
  assert.equal(info.compatibility, 'BACKWARD')
  assert.deepEqual(info.versions, [1])
  const { loaded } = await memoryEventValidator()
  assert.equal(loaded.version, 1)
  assert.equal(loaded.schema.$schema, 'https://json-schema.org/draft/2020-12/schema')
  assert.equal(typeof loaded.schema.$id, 'string')
  assert.equal((await loadSchema('memory.event', 1)).schema.$id, loaded.schema.$id)
})

test('memory.event v1 accepts valid events', async () => {
  const { validate } = await memoryEventValidator()
  const valid: unknown[] = [
    base,
    { ...base, op: 'upsert', version: 0, importance: 0.5, embedding: [0.1, -2, 3e-7], model_revision: 'r1' },
    { ...base, payload: null },
    { ...base, payload: ['any', 1, { json: true }] },
    { ...base, version: 9007199254740991 },
    { ...base, timestamp: '2025-03-01t12:00:00z' },
    { ...base, timestamp: '2016-12-31T23:59:60Z' },
    { ...base, unknown_future_field: { x: 1 } },
    // A delete needs neither type nor payload.
    { event_id: base.event_id, id: 'mem-1', namespace: 'default', op: 'delete', timestamp: base.timestamp },
    { ...base, id: 'x'.repeat(256) }
  ]
  for (const event of valid) {
    assert.equal(validate(event), true, `${JSON.stringify(event).slice(0, 120)}: ${JSON.stringify(validate.errors)}`)
  }
  const withDefault = { ...base }
  validate(withDefault)
  assert.equal((withDefault as MemoryEvent).op, 'upsert', 'op defaults to upsert')
})

test('memory.event v1 rejects invalid events', async () => {
  const { validate } = await memoryEventValidator()
  const { payload: _p, ...noPayload } = base
  const { type: _t, ...noType } = base
  const { event_id: _e, ...noEventId } = base
  const { timestamp: _ts, ...noTimestamp } = base
  const { namespace: _n, ...noNamespace } = base
  const invalid: [string, unknown][] = [
    ['not an object', 'hello'],
    ['array', [base]],
    ['missing event_id', noEventId],
    ['missing timestamp', noTimestamp],
    ['missing namespace', noNamespace],
    ['upsert without payload', noPayload],
    ['upsert without type', noType],
    ['explicit upsert without payload', { ...noPayload, op: 'upsert' }],
    ['event_id not a uuid', { ...base, event_id: 'abc' }],
    ['empty id', { ...base, id: '' }],
    ['id too long', { ...base, id: 'x'.repeat(257) }],
    ['numeric id', { ...base, id: 42 }],
    ['unknown op', { ...base, op: 'merge' }],
    ['timestamp without zone', { ...base, timestamp: '2025-03-01T12:00:00' }],
    ['date only', { ...base, timestamp: '2025-03-01' }],
    ['impossible date', { ...base, timestamp: '2025-02-30T00:00:00Z' }],
    ['negative version', { ...base, version: -1 }],
    ['fractional version', { ...base, version: 1.5 }],
    ['version beyond 2^53-1', { ...base, version: 9007199254740992 }],
    ['string importance', { ...base, importance: 'high' }],
    ['embedding of strings', { ...base, embedding: ['a'] }],
    ['empty type', { ...base, type: '' }]
  ]
  for (const [what, event] of invalid) assert.equal(validate(event), false, what)
})

test('loadSchema refuses unknown subjects, versions and path tricks', async () => {
  await assert.rejects(loadSchema('no.such.subject'), { name: 'FatalError', message: /not found/ })
  await assert.rejects(loadSchema('memory.event', 2), { name: 'FatalError', message: /no version 2/ })
  await assert.rejects(loadSchema('../etc'), { name: 'FatalError', message: /invalid schema subject/ })
  await assert.rejects(loadSchema('a/b'), { name: 'FatalError', message: /invalid schema subject/ })
})

test('loadSchema reads another directory and checks subject metadata', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sfm-schemas-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  await mkdir(join(dir, 'thing'))
  await writeFile(join(dir, 'thing', 'subject.json'), JSON.stringify({ compatibility: 'FULL', versions: [2, 1] }))
  await writeFile(join(dir, 'thing', 'v1.json'), JSON.stringify({ $id: 'urn:thing:1', type: 'object' }))
  await writeFile(join(dir, 'thing', 'v2.json'), JSON.stringify({ type: 'object' }))
  assert.deepEqual((await loadSubject('thing', { dir })).versions, [1, 2])
  assert.equal((await loadSchema('thing', 1, { dir })).schema.$id, 'urn:thing:1')
  await assert.rejects(loadSchema('thing', undefined, { dir }), { message: /needs an \$id/ })
  await writeFile(join(dir, 'thing', 'subject.json'), JSON.stringify({ compatibility: 'SIDEWAYS', versions: [1] }))
  await assert.rejects(loadSubject('thing', { dir }), { message: /compatibility must be one of/ })
})
