/**
 * Compatibility cases shared by the offline checker tests and the registry comparison tests: each is an old and a new
 * schema with the verdicts expected for BACKWARD (new reads old data) and FORWARD (old reads new data), and the rule
 * the checker must name when a direction breaks.
 */
import { readFileSync } from 'node:fs'

export interface CompatCase {
  readonly name: string
  readonly old: object | boolean
  readonly new: object | boolean
  readonly backward: boolean
  readonly forward: boolean
  /** A rule the offline checker reports for this change (with its JSON path when given). */
  readonly rule?: string
  readonly path?: string
}

const DIALECT = 'https://json-schema.org/draft/2020-12/schema'

function object(properties: Record<string, unknown>, extra: Record<string, unknown> = {}): object {
  return { $schema: DIALECT, type: 'object', properties, ...extra }
}

const a = { type: 'string' }

const DRAFT_07 = 'http://json-schema.org/draft-07/schema#'

/** An address definition with a plain-name fragment: draft-07 `"$id": "#Address"`, 2020-12 `"$anchor": "Address"`. */
function address(minLength: number, required: string[]) {
  return {
    type: 'object',
    properties: { street: { type: 'string', minLength }, city: { type: 'string' } },
    required
  }
}
const byPlainName = (definition: object) => ({
  $schema: DRAFT_07,
  type: 'object',
  definitions: { address: { $id: '#Address', ...definition } },
  properties: { home: { $ref: '#Address' }, work: { $ref: '#Address' } }
})
const byAnchor = (definition: object) => ({
  $schema: DIALECT,
  type: 'object',
  $defs: { address: { $anchor: 'Address', ...definition } },
  properties: { home: { $ref: '#Address' } }
})

/** A `code` whose pattern depends on `kind`; built from text: a `then` key makes an object literal a thenable. */
function conditional(thenPattern: boolean, elsePattern: boolean): object {
  const code = (pattern: string | false) => JSON.stringify(pattern ? { type: 'string', pattern } : { type: 'string' })
  return JSON.parse(`{
    "$schema": "${DRAFT_07}",
    "type": "object",
    "properties": { "kind": { "type": "string" }, "code": { "type": "string" } },
    "if": { "properties": { "kind": { "const": "a" } }, "required": ["kind"] },
    "then": { "properties": { "code": ${code(thenPattern && '^A[0-9]+$')} } },
    "else": { "properties": { "code": ${code(elsePattern && '^B[0-9]+$')} } }
  }`) as object
}

/** A tagged union: `kind` tells the branches apart, so no value matches both. */
function tagged(maxLength: number | undefined): object {
  const text = maxLength === undefined ? { type: 'string' } : { type: 'string', maxLength }
  return {
    $schema: DRAFT_07,
    oneOf: [
      { type: 'object', properties: { kind: { const: 'a' }, n: { type: 'integer' } }, required: ['kind'] },
      { type: 'object', properties: { kind: { const: 'b' }, s: text }, required: ['kind'] }
    ]
  }
}

const identified = (keyword: '$id' | 'id') => ({
  $schema: DRAFT_07,
  [keyword]: 'https://example.com/schemas/thing.json',
  type: 'object',
  properties: { a }
})
const memoryEventV1 = JSON.parse(
  readFileSync(new URL('../../schemas/memory.event/v1.json', import.meta.url), 'utf8')
) as Record<string, unknown> & { properties: Record<string, Record<string, unknown>>; required: string[] }

function memoryEvent(change: (schema: typeof memoryEventV1) => void): object {
  const copy = structuredClone(memoryEventV1)
  change(copy)
  return copy
}

export const compatCases: readonly CompatCase[] = [
  {
    name: 'identical schemas',
    old: object({ a }),
    new: object({ a }),
    backward: true,
    forward: true
  },
  {
    name: 'only the description changes',
    old: object({ a }, { description: 'one' }),
    new: object({ a }, { description: 'two' }),
    backward: true,
    forward: true
  },
  {
    name: 'optional property added to a closed content model',
    old: object({ a }, { additionalProperties: false }),
    new: object({ a, b: { type: 'integer' } }, { additionalProperties: false }),
    backward: true,
    forward: false,
    rule: 'PROPERTY_ADDED_TO_CLOSED_CONTENT_MODEL',
    path: '#/properties/b'
  },
  {
    name: 'optional property added to an open content model',
    old: object({ a }),
    new: object({ a, b: { type: 'integer' } }),
    backward: false,
    forward: true,
    rule: 'PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL',
    path: '#/properties/b'
  },
  {
    name: 'property with an empty schema added to an open content model',
    old: object({ a }),
    new: object({ a, b: {} }),
    backward: true,
    forward: true
  },
  {
    name: 'required property added to a closed content model',
    old: object({ a }, { additionalProperties: false }),
    new: object({ a, b: { type: 'integer' } }, { additionalProperties: false, required: ['b'] }),
    backward: false,
    forward: false,
    rule: 'REQUIRED_PROPERTY_ADDED',
    path: '#/required'
  },
  {
    name: 'existing property becomes required',
    old: object({ a }),
    new: object({ a }, { required: ['a'] }),
    backward: false,
    forward: true,
    rule: 'REQUIRED_PROPERTY_ADDED'
  },
  {
    name: 'required constraint removed',
    old: object({ a }, { required: ['a'] }),
    new: object({ a }),
    backward: true,
    forward: false,
    rule: 'REQUIRED_PROPERTY_REMOVED'
  },
  {
    name: 'property removed from an open content model',
    old: object({ a, b: { type: 'integer' } }),
    new: object({ a }),
    backward: true,
    forward: false,
    rule: 'PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL',
    path: '#/properties/b'
  },
  {
    name: 'property removed from a closed content model',
    old: object({ a, b: { type: 'integer' } }, { additionalProperties: false }),
    new: object({ a }, { additionalProperties: false }),
    backward: false,
    forward: true,
    rule: 'PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL'
  },
  {
    name: 'property added that matches the partially open content model',
    old: object({ a }, { additionalProperties: { type: 'string' } }),
    new: object({ a, b: { type: 'string' } }, { additionalProperties: { type: 'string' } }),
    backward: true,
    forward: true
  },
  {
    name: 'property added narrower than the partially open content model',
    old: object({ a }, { additionalProperties: { type: 'string' } }),
    new: object({ a, b: { type: 'string', maxLength: 3 } }, { additionalProperties: { type: 'string' } }),
    backward: false,
    forward: true,
    rule: 'PROPERTY_ADDED_TO_PARTIALLY_OPEN_CONTENT_MODEL'
  },
  {
    name: 'open content model closed (additionalProperties: false)',
    old: object({ a }),
    new: object({ a }, { additionalProperties: false }),
    backward: false,
    forward: true,
    rule: 'ADDITIONAL_PROPERTIES_CLOSED',
    path: '#/additionalProperties'
  },
  {
    name: 'closed content model opened',
    old: object({ a }, { additionalProperties: false }),
    new: object({ a }),
    backward: true,
    forward: false,
    rule: 'ADDITIONAL_PROPERTIES_OPENED'
  },
  {
    name: 'additionalProperties changed from any value to a schema',
    old: object({ a }),
    new: object({ a }, { additionalProperties: { type: 'string' } }),
    backward: false,
    forward: true,
    rule: 'ADDITIONAL_PROPERTIES_NARROWED'
  },
  {
    name: 'type widened from integer to number',
    old: object({ n: { type: 'integer' } }),
    new: object({ n: { type: 'number' } }),
    backward: true,
    forward: false,
    rule: 'TYPE_EXTENDED',
    path: '#/properties/n/type'
  },
  {
    name: 'type narrowed from number to integer',
    old: object({ n: { type: 'number' } }),
    new: object({ n: { type: 'integer' } }),
    backward: false,
    forward: true,
    rule: 'TYPE_NARROWED',
    path: '#/properties/n/type'
  },
  {
    name: 'type changed from string to integer',
    old: object({ n: { type: 'string' } }),
    new: object({ n: { type: 'integer' } }),
    backward: false,
    forward: false,
    rule: 'TYPE_CHANGED'
  },
  {
    name: 'null added to the type',
    old: object({ n: { type: 'string' } }),
    new: object({ n: { type: ['string', 'null'] } }),
    backward: true,
    forward: false,
    rule: 'TYPE_EXTENDED'
  },
  {
    name: 'enum value removed',
    old: object({ op: { enum: ['upsert', 'delete'] } }),
    new: object({ op: { enum: ['upsert'] } }),
    backward: false,
    forward: true,
    rule: 'ENUM_VALUES_REMOVED',
    path: '#/properties/op/enum'
  },
  {
    name: 'enum value added',
    old: object({ op: { enum: ['upsert'] } }),
    new: object({ op: { enum: ['upsert', 'delete'] } }),
    backward: true,
    forward: false,
    rule: 'ENUM_VALUES_ADDED'
  },
  {
    name: 'maxLength decreased',
    old: object({ s: { type: 'string', maxLength: 10 } }),
    new: object({ s: { type: 'string', maxLength: 5 } }),
    backward: false,
    forward: true,
    rule: 'MAX_LENGTH_DECREASED',
    path: '#/properties/s/maxLength'
  },
  {
    name: 'maxLength increased',
    old: object({ s: { type: 'string', maxLength: 5 } }),
    new: object({ s: { type: 'string', maxLength: 10 } }),
    backward: true,
    forward: false,
    rule: 'MAX_LENGTH_INCREASED'
  },
  {
    name: 'minimum raised',
    old: object({ n: { type: 'integer', minimum: 0 } }),
    new: object({ n: { type: 'integer', minimum: 1 } }),
    backward: false,
    forward: true,
    rule: 'MINIMUM_INCREASED',
    path: '#/properties/n/minimum'
  },
  {
    name: 'maximum removed',
    old: object({ n: { type: 'integer', maximum: 10 } }),
    new: object({ n: { type: 'integer' } }),
    backward: true,
    forward: false,
    rule: 'MAXIMUM_REMOVED'
  },
  {
    name: 'minItems added',
    old: object({ xs: { type: 'array', items: { type: 'number' } } }),
    new: object({ xs: { type: 'array', items: { type: 'number' }, minItems: 1 } }),
    backward: false,
    forward: true,
    rule: 'MIN_ITEMS_ADDED'
  },
  {
    name: 'array item type narrowed',
    old: object({ xs: { type: 'array', items: { type: 'number' } } }),
    new: object({ xs: { type: 'array', items: { type: 'integer' } } }),
    backward: false,
    forward: true,
    rule: 'TYPE_NARROWED',
    path: '#/properties/xs/items/type'
  },
  {
    name: 'pattern added',
    old: object({ s: { type: 'string' } }),
    new: object({ s: { type: 'string', pattern: '^[a-z]+$' } }),
    backward: false,
    forward: true,
    rule: 'PATTERN_ADDED'
  },
  {
    name: 'format added',
    old: object({ s: { type: 'string' } }),
    new: object({ s: { type: 'string', format: 'uuid' } }),
    backward: false,
    forward: true,
    rule: 'FORMAT_ADDED'
  },
  {
    name: 'multipleOf relaxed from 10 to 5',
    old: object({ n: { type: 'integer', multipleOf: 10 } }),
    new: object({ n: { type: 'integer', multipleOf: 5 } }),
    backward: true,
    forward: false,
    rule: 'MULTIPLE_OF_REDUCED'
  },
  {
    name: 'anyOf branch added',
    old: object({ v: { anyOf: [{ type: 'string' }, { type: 'integer' }] } }),
    new: object({ v: { anyOf: [{ type: 'string' }, { type: 'integer' }, { type: 'null' }] } }),
    backward: true,
    forward: false
  },
  {
    name: 'anyOf branch removed',
    old: object({ v: { anyOf: [{ type: 'string' }, { type: 'integer' }, { type: 'null' }] } }),
    new: object({ v: { anyOf: [{ type: 'string' }, { type: 'integer' }] } }),
    backward: false,
    forward: true
  },
  {
    name: 'maxLength increased behind a $ref',
    old: object({ s: { $ref: '#/$defs/name' } }, { $defs: { name: { type: 'string', maxLength: 5 } } }),
    new: object({ s: { $ref: '#/$defs/name' } }, { $defs: { name: { type: 'string', maxLength: 10 } } }),
    backward: true,
    forward: false,
    rule: 'MAX_LENGTH_INCREASED',
    path: '#/properties/s/maxLength'
  },
  {
    name: 'draft-07 plain-name $ref ("$id": "#Address"): minLength 10 → 5 and a required entry removed',
    old: byPlainName(address(10, ['street', 'city'])),
    new: byPlainName(address(5, ['street'])),
    backward: true,
    forward: false,
    rule: 'MIN_LENGTH_DECREASED',
    path: '#/properties/home/properties/street/minLength'
  },
  {
    name: 'draft-07 plain-name $ref ("$id": "#Address"): minLength 5 → 10',
    old: byPlainName(address(5, ['street'])),
    new: byPlainName(address(10, ['street'])),
    backward: false,
    forward: true,
    rule: 'MIN_LENGTH_INCREASED',
    path: '#/properties/work/properties/street/minLength'
  },
  {
    name: 'draft-07 plain-name $ref ("$id": "#Address") inlined at its use sites',
    old: byPlainName(address(10, ['street', 'city'])),
    new: {
      $schema: DRAFT_07,
      type: 'object',
      properties: { home: address(10, ['street', 'city']), work: address(10, ['street', 'city']) }
    },
    backward: true,
    forward: true
  },
  {
    name: '2020-12 $anchor $ref: minLength 10 → 5 and a required entry removed',
    old: byAnchor(address(10, ['street', 'city'])),
    new: byAnchor(address(5, ['street'])),
    backward: true,
    forward: false,
    rule: 'REQUIRED_PROPERTY_REMOVED',
    path: '#/properties/home/required'
  },
  {
    name: '2020-12 $anchor $ref inlined at its use site',
    old: byAnchor(address(10, ['street', 'city'])),
    new: object({ home: address(10, ['street', 'city']) }),
    backward: true,
    forward: true
  },
  {
    name: 'allOf → anyOf over the same subschemas',
    old: { $schema: DRAFT_07, type: 'number', allOf: [{ maximum: 100 }, { multipleOf: 6 }] },
    new: { $schema: DRAFT_07, type: 'number', anyOf: [{ maximum: 100 }, { multipleOf: 6 }] },
    backward: true,
    forward: false,
    rule: 'ALL_OF_MEMBER_REMOVED',
    path: '#/allOf/0'
  },
  {
    name: 'anyOf → allOf over the same subschemas',
    old: { $schema: DRAFT_07, type: 'number', anyOf: [{ maximum: 100 }, { multipleOf: 6 }] },
    new: { $schema: DRAFT_07, type: 'number', allOf: [{ maximum: 100 }, { multipleOf: 6 }] },
    backward: false,
    forward: true,
    rule: 'ALL_OF_MEMBER_ADDED',
    path: '#/allOf/1'
  },
  {
    name: 'if/then/else: the pattern in then dropped',
    old: conditional(true, true),
    new: conditional(false, true),
    backward: true,
    forward: false,
    rule: 'PATTERN_REMOVED',
    path: '#/then/properties/code/pattern'
  },
  {
    name: 'if/then/else: the pattern in else dropped',
    old: conditional(true, true),
    new: conditional(true, false),
    backward: true,
    forward: false,
    rule: 'PATTERN_REMOVED',
    path: '#/else/properties/code/pattern'
  },
  {
    name: 'root $id renamed to draft-04 id',
    old: identified('$id'),
    new: identified('id'),
    backward: true,
    forward: true
  },
  {
    name: 'root draft-04 id renamed to $id',
    old: identified('id'),
    new: identified('$id'),
    backward: true,
    forward: true
  },
  {
    name: 'oneOf added over overlapping branches (integer, number)',
    old: { $schema: DRAFT_07, type: 'integer' },
    new: { $schema: DRAFT_07, oneOf: [{ type: 'integer' }, { type: 'number' }] },
    backward: false,
    forward: false,
    rule: 'ONE_OF_OVERLAP',
    path: '#/oneOf'
  },
  {
    name: 'oneOf branch widened into its neighbour (maxLength 3 → 6 next to minLength 5)',
    old: { $schema: DRAFT_07, type: 'string', oneOf: [{ maxLength: 3 }, { minLength: 5 }] },
    new: { $schema: DRAFT_07, type: 'string', oneOf: [{ maxLength: 6 }, { minLength: 5 }] },
    backward: false,
    forward: false,
    rule: 'ONE_OF_OVERLAP',
    path: '#/oneOf'
  },
  {
    name: 'oneOf branch of another type added',
    old: { $schema: DRAFT_07, oneOf: [{ type: 'string' }, { type: 'integer' }] },
    new: { $schema: DRAFT_07, oneOf: [{ type: 'string' }, { type: 'integer' }, { type: 'null' }] },
    backward: true,
    forward: false,
    rule: 'ONE_OF_BRANCH_ADDED'
  },
  {
    name: 'tagged oneOf: one branch widened (maxLength removed)',
    old: tagged(3),
    new: tagged(undefined),
    backward: true,
    forward: false,
    rule: 'MAX_LENGTH_REMOVED',
    path: '#/oneOf/1/properties/s/maxLength'
  },
  {
    name: 'anyOf → oneOf over branches of different types',
    old: { $schema: DRAFT_07, anyOf: [{ type: 'string' }, { type: 'integer' }] },
    new: { $schema: DRAFT_07, oneOf: [{ type: 'string' }, { type: 'integer' }] },
    backward: true,
    forward: true
  },
  {
    name: 'memory.event: op "delete" removed',
    old: memoryEventV1,
    new: memoryEvent((s) => {
      s.properties.op!.enum = ['upsert']
    }),
    backward: false,
    forward: true,
    rule: 'ENUM_VALUES_REMOVED',
    path: '#/properties/op/enum'
  },
  {
    name: 'memory.event: importance becomes required',
    old: memoryEventV1,
    new: memoryEvent((s) => {
      s.required.push('importance')
    }),
    backward: false,
    forward: true,
    rule: 'REQUIRED_PROPERTY_ADDED'
  },
  {
    name: 'memory.event: id maxLength raised to 512',
    old: memoryEventV1,
    new: memoryEvent((s) => {
      s.properties.id!.maxLength = 512
    }),
    backward: true,
    forward: false,
    rule: 'MAX_LENGTH_INCREASED'
  },
  {
    name: 'memory.event: upserts also need model_revision (inside else)',
    old: memoryEventV1,
    new: memoryEvent((s) => {
      const otherwise = s.else as { required: string[]; properties: Record<string, unknown> }
      otherwise.required.push('model_revision')
      otherwise.properties.model_revision = true
    }),
    backward: false,
    forward: true,
    rule: 'REQUIRED_PROPERTY_ADDED',
    path: '#/else/required'
  }
]
