import assert from 'node:assert/strict'
import { test } from 'node:test'
import { checkCompatibility, diffSchemas, formatIssue } from '../../src/schemas/compat/index.ts'
import { Compatibilities, type Compatibility } from '../../src/schemas.ts'
import { compatCases } from './compat-cases.ts'

/** What each mode must answer, given a case's backward and forward verdicts (one earlier version). */
function expected(mode: Compatibility, backward: boolean, forward: boolean): boolean {
  if (mode === 'NONE') return true
  if (mode.startsWith('BACKWARD')) return backward
  if (mode.startsWith('FORWARD')) return forward
  return backward && forward
}

test(`at least 20 compatible and 20 incompatible cases`, () => {
  assert.ok(compatCases.length >= 20)
  assert.ok(compatCases.filter((c) => c.backward).length >= 10)
  assert.ok(compatCases.filter((c) => !c.backward).length >= 10)
})

for (const c of compatCases) {
  test(`compat: ${c.name}`, () => {
    for (const mode of Object.values(Compatibilities)) {
      const result = checkCompatibility(mode, [{ version: 1, schema: c.old }], { version: 2, schema: c.new }, 'case')
      assert.equal(
        result.compatible,
        expected(mode, c.backward, c.forward),
        `${mode}: ${result.issues.map(formatIssue).join('\n') || 'no issues'}`
      )
    }
    if (c.rule !== undefined) {
      const changes = diffSchemas(c.old, c.new)
      const named = changes.find((ch) => ch.type === c.rule && (c.path === undefined || ch.path === c.path))
      assert.ok(named, `expected ${c.rule} at ${c.path ?? 'any path'}, got ${JSON.stringify(changes, null, 1)}`)
      // The named rule carries the verdict of the direction that breaks.
      if (!c.backward && c.forward) assert.equal(named.backward, false)
      if (c.backward && !c.forward) assert.equal(named.forward, false)
    }
  })
}

test('issues name the subject, both versions, the direction, the rule and the JSON path', () => {
  const result = checkCompatibility(
    'FULL',
    [{ version: 1, schema: { type: 'object', properties: { op: { enum: ['a', 'b'] } } } }],
    { version: 2, schema: { type: 'object', properties: { op: { enum: ['a', 'c'] } } } },
    'memory.event'
  )
  assert.equal(result.compatible, false)
  const lines = result.issues.map(formatIssue)
  assert.deepEqual(lines.sort(), [
    'memory.event v2 vs v1: BACKWARD ENUM_VALUES_REMOVED at #/properties/op/enum: ["b"] removed: old data holding them fails',
    'memory.event v2 vs v1: FORWARD ENUM_VALUES_ADDED at #/properties/op/enum: ["c"] added: old readers reject them'
  ])
})

test('transitive modes check every earlier version, the others only the latest', () => {
  // v2 narrowed v1 (registered while the subject was NONE); v3 is compatible with v2 but not with v1.
  const history = [
    { version: 1, schema: { enum: ['a', 'b'] } },
    { version: 2, schema: { enum: ['a'] } }
  ]
  const v3 = { version: 3, schema: { enum: ['a', 'c'] } }
  assert.equal(checkCompatibility('BACKWARD', history, v3).compatible, true)
  const transitive = checkCompatibility('BACKWARD_TRANSITIVE', history, v3)
  assert.equal(transitive.compatible, false)
  assert.deepEqual(
    transitive.issues.map((i) => [i.from, i.to, i.rule]),
    [[1, 3, 'ENUM_VALUES_REMOVED']]
  )
  assert.equal(checkCompatibility('FORWARD_TRANSITIVE', history, v3).issues.length, 2)
  assert.equal(checkCompatibility('NONE', history, v3).compatible, true)
  assert.equal(checkCompatibility('FULL', [], v3).compatible, true, 'a first version is always compatible')
})

test('recursive $ref terminates and compares the recursion once', () => {
  const tree = (max: number) => ({
    $ref: '#/$defs/node',
    $defs: {
      node: {
        type: 'object',
        properties: {
          name: { type: 'string', maxLength: max },
          children: { type: 'array', items: { $ref: '#/$defs/node' } }
        }
      }
    }
  })
  const changes = diffSchemas(tree(5), tree(10))
  assert.deepEqual(
    changes.map((c) => [c.type, c.path]),
    [['MAX_LENGTH_INCREASED', '#/properties/name/maxLength']]
  )
})

test('what cannot be proven is incompatible: unknown keywords, external $ref, changed if', () => {
  const unknown = diffSchemas({ type: 'string', foo: 1 }, { type: 'string', foo: 2 })
  assert.deepEqual(
    unknown.map((c) => [c.type, c.backward, c.forward]),
    [['UNKNOWN_KEYWORD_CHANGED', false, false]]
  )
  const external = diffSchemas({ $ref: 'https://example.com/a.json' }, { $ref: 'https://example.com/b.json' })
  assert.equal(external[0]?.type, 'REFERENCE_UNRESOLVED')
  assert.equal(diffSchemas({ $ref: 'https://example.com/a.json' }, { $ref: 'https://example.com/a.json' }).length, 0)
  // Built from text: an object literal with a `then` key is a thenable to the linter.
  const condition = diffSchemas(
    JSON.parse('{"if": {"required": ["a"]}, "then": {"required": ["b"]}}'),
    JSON.parse('{"if": {"required": ["c"]}, "then": {"required": ["b"]}}')
  )
  assert.deepEqual(
    condition.map((c) => [c.type, c.backward, c.forward]),
    [['CONDITION_CHANGED', false, false]]
  )
  assert.deepEqual(diffSchemas({ 'x-owner': 'a', type: 'string' }, { 'x-owner': 'b', type: 'string' }), [])
})

test('boolean schemas and trivial schemas', () => {
  const verdicts = (a: unknown, b: unknown) => diffSchemas(a, b).map((c) => [c.type, c.backward, c.forward])
  assert.deepEqual(verdicts(true, {}), [])
  assert.deepEqual(verdicts(false, { type: 'string' }), [['SCHEMA_OPENED', true, false]])
  assert.deepEqual(verdicts({ type: 'string' }, false), [['SCHEMA_CLOSED', false, true]])
  assert.deepEqual(verdicts({ type: 'string' }, { description: 'any' }), [
    ['DESCRIPTION_CHANGED', true, true],
    ['CONSTRAINTS_REMOVED', true, false]
  ])
  assert.throws(() => diffSchemas('nope', {}), { name: 'FatalError' })
})

test('hostile input: deep nesting and combinator blow-up stop with an error or a verdict, quickly', () => {
  let deep: unknown = { type: 'string' }
  for (let i = 0; i < 200; i++) deep = { type: 'object', properties: { x: deep } }
  const started = performance.now()
  const changes = diffSchemas(deep, structuredClone(deep))
  assert.ok(changes.every((c) => c.type === 'SCHEMA_TOO_DEEP'))
  let wide: unknown = { type: 'string' }
  for (let i = 0; i < 12; i++) wide = { anyOf: [wide, { type: 'integer', minimum: i }, { type: 'null' }] }
  let wide2: unknown = { type: 'string', maxLength: 3 }
  for (let i = 0; i < 12; i++) wide2 = { anyOf: [wide2, { type: 'integer', minimum: i }] }
  try {
    diffSchemas(wide, wide2)
  } catch (error) {
    assert.match(String(error), /too complex/)
  }
  assert.ok(performance.now() - started < 10_000)
})
