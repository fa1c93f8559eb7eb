import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { Ajv } from 'ajv'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { checkCompatibility, diffSchemas, formatIssue } from '../../src/schemas/compat/index.ts'
import { Compatibilities, type Compatibility } from '../../src/schemas.ts'
import { schemasCli } from '../helpers/schemas-cli.ts'
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

/**
 * The issue-21 verdicts proven on values with ajv: a witness for each broken direction (accepted by one schema,
 * rejected by the other), and for each compatible direction no sample value that one accepts and the other rejects.
 * ajv resolves `"$id": "#Address"` and `$anchor` the way refs.ts does; it refuses draft-04 `id`, so the two id cases
 * (annotation only) are not run here.
 */
const WITNESSES: Record<string, { backward?: unknown; forward?: unknown }> = {
  'draft-07 plain-name $ref ("$id": "#Address"): minLength 10 → 5 and a required entry removed': {
    forward: { home: { street: '12345' } }
  },
  'draft-07 plain-name $ref ("$id": "#Address"): minLength 5 → 10': { backward: { work: { street: '123456' } } },
  'draft-07 plain-name $ref ("$id": "#Address") inlined at its use sites': {},
  '2020-12 $anchor $ref: minLength 10 → 5 and a required entry removed': { forward: { home: { street: '12345' } } },
  '2020-12 $anchor $ref inlined at its use site': {},
  'allOf → anyOf over the same subschemas': { forward: 600 },
  'anyOf → allOf over the same subschemas': { backward: 600 },
  'if/then/else: the pattern in then dropped': { forward: { kind: 'a', code: 'x' } },
  'if/then/else: the pattern in else dropped': { forward: { kind: 'b', code: 'x' } },
  'oneOf added over overlapping branches (integer, number)': { backward: 5, forward: 1.5 },
  'oneOf branch widened into its neighbour (maxLength 3 → 6 next to minLength 5)': {
    backward: 'abcde',
    forward: 'abcd'
  },
  'oneOf branch of another type added': { forward: null },
  'tagged oneOf: one branch widened (maxLength removed)': { forward: { kind: 'b', s: 'abcdef' } },
  'anyOf → oneOf over branches of different types': {}
}
const SAMPLES: unknown[] = [
  null,
  'text',
  5,
  12,
  96,
  600,
  601,
  {},
  { home: { street: '1234567890', city: 'c' }, work: { street: '1234567890', city: 'c' } },
  { home: { street: '12345' } },
  { home: { street: '1234567890' } },
  { work: { street: '123' } },
  { home: 'x' },
  { kind: 'a', code: 'A1' },
  { kind: 'b', code: 'B1' },
  { kind: 'a', code: 'B1' },
  { kind: 'b', code: 'A1' },
  { code: 'B2' },
  1.5,
  'abc',
  'abcd',
  'abcde',
  'abcdefg',
  { kind: 'a', n: 1 },
  { kind: 'b', s: 'ab' },
  { kind: 'b', s: 'abcdef' },
  { kind: 'c' },
  true
]

function validator(schema: object): (value: unknown) => boolean {
  const dialect = (schema as { $schema?: string }).$schema ?? ''
  const ajv = dialect.includes('2020-12') ? new Ajv2020({ strict: false }) : new Ajv({ strict: false })
  const validate = ajv.compile(schema)
  return (value) => validate(value) === true
}

for (const [name, witness] of Object.entries(WITNESSES)) {
  test(`compat: ${name}: the verdicts hold on values (ajv)`, () => {
    const c = compatCases.find((x) => x.name === name)
    assert.ok(c, `no case named ${name}`)
    const before = validator(c.old as object)
    const after = validator(c.new as object)
    assert.equal(witness.backward === undefined, c.backward, 'a backward break needs a witness, a pass none')
    assert.equal(witness.forward === undefined, c.forward, 'a forward break needs a witness, a pass none')
    if (witness.backward !== undefined) assert.ok(before(witness.backward) && !after(witness.backward))
    if (witness.forward !== undefined) assert.ok(after(witness.forward) && !before(witness.forward))
    for (const value of SAMPLES) {
      if (c.backward && before(value)) assert.ok(after(value), `backward: new rejects ${JSON.stringify(value)}`)
      if (c.forward && after(value)) assert.ok(before(value), `forward: old rejects ${JSON.stringify(value)}`)
    }
  })
}

test('$ref resolves against its schema resource: embedded $id, relative and absolute URIs, $anchor inside', () => {
  const doc = (maximum: number, anchored: number) => ({
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://example.com/root.json',
    $defs: {
      // Same names as inside item.json: resolving `#/$defs/x` against the root would compare these, unchanged.
      x: { type: 'string' },
      a: { type: 'string' },
      item: {
        $id: 'item.json',
        $defs: { x: { type: 'integer', maximum }, a: { $anchor: 'A', type: 'integer', maximum: anchored } },
        properties: { local: { $ref: '#/$defs/x' }, named: { $ref: '#A' } }
      }
    },
    properties: {
      v: { $ref: 'item.json' },
      w: { $ref: 'https://example.com/item.json#/$defs/x' }
    }
  })
  assert.deepEqual(
    diffSchemas(doc(10, 3), doc(5, 3)).map((c) => [c.type, c.path, c.backward, c.forward]),
    [
      ['MAXIMUM_DECREASED', '#/properties/v/properties/local/maximum', false, true],
      ['MAXIMUM_DECREASED', '#/properties/w/maximum', false, true]
    ]
  )
  assert.deepEqual(
    diffSchemas(doc(10, 3), doc(10, 4)).map((c) => [c.type, c.path]),
    [['MAXIMUM_INCREASED', '#/properties/v/properties/named/maximum']]
  )
})

test('a $ref node shared by the old and the new schema resolves in each document', () => {
  // One object in both documents (callers build schemas with spreads); its $ref names a different definition in each.
  const name = { $ref: '#/$defs/name', minLength: 1 }
  const doc = (maxLength: number) => ({ properties: { s: name }, $defs: { name: { type: 'string', maxLength } } })
  assert.deepEqual(
    diffSchemas(doc(10), doc(5)).map((c) => [c.type, c.path]),
    [['MAX_LENGTH_DECREASED', '#/properties/s/allOf/0/maxLength']]
  )
})

test('what the checker cannot decide it names as "cannot decide" and counts as a break, never a pass', () => {
  const a = { type: 'string' }
  const undecided = (a: unknown, b: unknown) =>
    diffSchemas(a, b)
      .filter((c) => c.undecided !== undefined)
      .map((c) => [c.type, c.undecided, c.backward, c.forward, c.message.startsWith(`cannot decide ${c.undecided}: `)])
  // A plain-name $ref naming nothing: unchanged text, but what it names may not be; before refs.ts it passed.
  const nowhere = { properties: { home: { $ref: '#Nowhere' } }, $defs: { a: { $anchor: 'Address', maxLength: 3 } } }
  assert.deepEqual(undecided(nowhere, structuredClone(nowhere)), [
    ['REFERENCE_UNRESOLVED', '$ref "#Nowhere"', false, false, true]
  ])
  // The same anchor twice in one resource: ambiguous.
  const twice = (max: number) => ({
    properties: { v: { $ref: '#A' } },
    $defs: { a: { $anchor: 'A', maxLength: max }, b: { $anchor: 'A', maxLength: 3 } }
  })
  assert.deepEqual(undecided(twice(3), twice(4)), [['REFERENCE_UNRESOLVED', '$ref "#A"', false, false, true]])
  // $dynamicRef: dynamic scope is not modelled; any difference in the documents is undecided, none is no change.
  const dynamic = (max: number) => ({
    $dynamicAnchor: 'node',
    type: 'object',
    properties: { name: { type: 'string', maxLength: max }, kids: { type: 'array', items: { $dynamicRef: '#node' } } }
  })
  assert.deepEqual(undecided(dynamic(5), dynamic(10)), [['DYNAMIC_REFERENCE', '$dynamicRef', false, false, true]])
  assert.deepEqual(diffSchemas(dynamic(5), dynamic(5)), [])
  assert.deepEqual(undecided({ type: 'string', foo: 1 }, { type: 'string', foo: 2 }), [
    ['UNKNOWN_KEYWORD_CHANGED', 'keyword "foo"', false, false, true]
  ])
  assert.deepEqual(undecided({ $ref: 'https://example.com/a.json' }, { $ref: 'https://example.com/b.json' }), [
    ['REFERENCE_UNRESOLVED', '$ref "https://example.com/a.json"', false, false, true]
  ])
  const condition = undecided(
    JSON.parse('{"if": {"required": ["a"]}, "then": {"required": ["b"]}}'),
    JSON.parse('{"if": {"required": ["c"]}, "then": {"required": ["b"]}}')
  )
  assert.deepEqual(condition, [['CONDITION_CHANGED', 'if', false, false, true]])
  // then/else that accept everything: the if decides nothing, so changing it is decided (no effect).
  assert.deepEqual(
    diffSchemas(JSON.parse('{"if": {"required": ["a"]}, "then": {}}'), JSON.parse('{"if": {"required": ["c"]}}')).map(
      (c) => [c.type, c.backward, c.forward, c.undecided]
    ),
    [['CONDITION_CHANGED', true, true, undefined]]
  )
  // oneOf branches that never overlap (maxLength 3, minLength 4) but cannot be proven apart: a false alarm, not a pass.
  const lengths = (min: number) => ({ type: 'string', oneOf: [{ maxLength: 3 }, { minLength: min }] })
  assert.deepEqual(undecided(lengths(5), lengths(4)), [['ONE_OF_OVERLAP', 'oneOf', false, true, true]])
  // unevaluatedProperties next to a changed allOf: {"b": 1} passed the old schema and fails the new one (ajv).
  const evaluated = (names: string[]) => ({
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    allOf: [{ properties: Object.fromEntries(names.map((name) => [name, {}])) }],
    unevaluatedProperties: false
  })
  assert.deepEqual(undecided(evaluated(['a', 'b']), evaluated(['a'])), [
    ['UNEVALUATED_PROPERTIES_CONTEXT_CHANGED', 'unevaluatedProperties', false, false, true]
  ])
  assert.ok(validator(evaluated(['a', 'b']))({ b: 1 }) && !validator(evaluated(['a']))({ b: 1 }))
  assert.deepEqual(diffSchemas(evaluated(['a']), { ...evaluated(['a']), description: 'same' }).length, 1)
  // Found inside a sub-comparison (a removed property whose schema has a dangling $ref): the change names it too.
  assert.deepEqual(undecided({ properties: { a, b: { $ref: '#Nowhere' } } }, { properties: { a } }), [
    ['PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL', '$ref "#Nowhere"', false, false, true]
  ])
  // The issue carries the construct, and every mode that checks a direction fails.
  const result = checkCompatibility('BACKWARD', [{ version: 1, schema: nowhere }], { version: 2, schema: nowhere })
  assert.equal(result.compatible, false)
  assert.equal(result.issues[0]?.undecided, '$ref "#Nowhere"')
  assert.match(
    formatIssue(result.issues[0]!),
    /BACKWARD REFERENCE_UNRESOLVED at #\/properties\/home: cannot decide \$ref "#Nowhere"/
  )
})

test('anyOf next to oneOf in one schema: both are compared', () => {
  const both = (max: number) => ({
    anyOf: [{ type: 'string' }, { type: 'integer' }],
    oneOf: [{ type: 'string', maxLength: max }, { type: 'integer' }]
  })
  assert.deepEqual(
    diffSchemas(both(3), both(2)).map((c) => [c.type, c.path, c.backward, c.forward]),
    [['MAX_LENGTH_DECREASED', '#/oneOf/0/maxLength', false, true]]
  )
})

test('check-pair prints "cannot decide" with the construct and exits 1', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sfm-compat-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'old.json'), JSON.stringify({ type: 'string', foo: 1 }))
  await writeFile(join(dir, 'new.json'), JSON.stringify({ type: 'string', foo: 2 }))
  const run = await schemasCli(['check-pair', join(dir, 'old.json'), join(dir, 'new.json'), '--mode', 'FULL'])
  assert.equal(run.code, 1, run.stderr)
  assert.match(run.stdout, /^incompatible$/m)
  assert.match(run.stdout, /^ {2}BACKWARD UNKNOWN_KEYWORD_CHANGED at #\/foo: cannot decide keyword "foo": /m)
  assert.match(run.stdout, /^ {2}FORWARD UNKNOWN_KEYWORD_CHANGED at #\/foo: cannot decide keyword "foo": /m)
  const json = await schemasCli(['check-pair', join(dir, 'old.json'), join(dir, 'new.json'), '--json'])
  assert.equal(json.code, 1)
  const parsed = JSON.parse(json.stdout) as { issues: { undecided?: string }[] }
  assert.deepEqual(
    parsed.issues.map((i) => i.undecided),
    ['keyword "foo"']
  )
})
