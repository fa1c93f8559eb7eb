import { FatalError } from '../../errors.ts'
import { compareArray } from './arrays.ts'
import type { SchemaChange } from './change.ts'
import { compareAllOf, compareConditional, compareNot, compareSum } from './combinators.ts'
import {
  acceptsEverything,
  childPath,
  isAnnotationKeyword,
  isObject,
  isSchemaNode,
  jsonEqual,
  KNOWN_KEYWORDS,
  type SchemaNode,
  unescapePointer
} from './json.ts'
import { compareObject } from './objects.ts'
import { compareNumber, compareString } from './scalars.ts'
import { compareEnum, compareTypes, effectiveTypes, enumValues, share } from './types.ts'

/**
 * A structural diff of two JSON Schemas (2020-12, with draft-07 spellings understood) that names each change and
 * decides, for each, whether the new schema still accepts everything the old one did (backward) and the reverse
 * (forward).
 *
 * The rule set follows what the registries apply to JSON Schema (Confluent's `json.diff.Difference.Type` and
 * Apicurio's `jsonschema.diff.DiffType`), re-derived from one principle instead of a table: a change is backward
 * compatible when the set of values the new schema accepts contains the old set. In particular, as in both registries:
 * adding a property to an *open* content model is backward incompatible (old data may carry that name with any value),
 * adding it to a *closed* one is forward incompatible, a *partially open* model (additionalProperties or
 * patternProperties with a schema) compares the property with the schema that covered it before. Where the checker
 * cannot prove anything (an unknown keyword, an unresolvable `$ref`, a changed `if`), it says incompatible.
 *
 * Limits, on purpose: `$ref` resolves inside the same document only (`#/…` pointers), and a property declared in
 * `properties` is compared on that declaration alone even when a `patternProperties` pattern also matches it.
 */

const MAX_DEPTH = 64
/** Upper bound on compared schema pairs: combinators make probes multiply, and input may be hostile. */
const MAX_STEPS = 200_000
const MAX_REF_HOPS = 32

export interface Walk {
  readonly oldRoot: SchemaNode
  readonly newRoot: SchemaNode
  /** Pairs being compared right now: meeting one again (a recursive `$ref`) assumes it compatible (co-induction). */
  readonly active: Map<object, Set<object>>
  readonly budget: { steps: number }
  depth: number
}

export type Out = SchemaChange[]

/** Every change from `oldSchema` to `newSchema`, compatible ones (annotations, widening) included. */
export function diffSchemas(oldSchema: unknown, newSchema: unknown): SchemaChange[] {
  if (!isSchemaNode(oldSchema) || !isSchemaNode(newSchema)) {
    throw new FatalError('a JSON Schema must be an object or a boolean')
  }
  const walk: Walk = { oldRoot: oldSchema, newRoot: newSchema, active: new Map(), budget: { steps: 0 }, depth: 0 }
  const out: Out = []
  compare(walk, out, '#', oldSchema, newSchema)
  return out
}

export function add(out: Out, type: string, path: string, backward: boolean, forward: boolean, message: string): void {
  out.push({ type, path, backward, forward, message })
}

// ---------------------------------------------------------------------------------------------------------------
// $ref

const synthetic = new WeakMap<object, SchemaNode>()

function lookup(root: SchemaNode, ref: string): SchemaNode | undefined {
  let fragment: string | undefined
  if (ref.startsWith('#')) fragment = ref.slice(1)
  else if (isObject(root) && typeof root.$id === 'string') {
    const base = root.$id.split('#')[0]
    if (ref.startsWith(`${base}#`)) fragment = ref.slice(base!.length + 1)
    else if (ref === base) fragment = ''
  }
  if (fragment === undefined) return undefined
  if (fragment === '') return root
  if (!fragment.startsWith('/')) return undefined
  let node: unknown = root
  for (const raw of fragment.slice(1).split('/')) {
    let token: string
    try {
      token = unescapePointer(decodeURIComponent(raw))
    } catch {
      return undefined
    }
    if (Array.isArray(node)) node = node[Number(token)]
    else if (isObject(node) && Object.hasOwn(node, token)) node = node[token]
    else return undefined
  }
  return isSchemaNode(node) ? node : undefined
}

/** Follows `$ref`; a `$ref` with sibling assertions becomes `allOf: [target]` next to them (2020-12 semantics). */
export function resolve(root: SchemaNode, node: SchemaNode): SchemaNode | undefined {
  let current = node
  for (let hop = 0; hop < MAX_REF_HOPS; hop++) {
    if (!isObject(current) || typeof current.$ref !== 'string') return current
    const target = lookup(root, current.$ref)
    if (target === undefined) return undefined
    const { $ref: _ref, ...rest } = current
    if (Object.keys(rest).every(isAnnotationKeyword)) {
      current = target
      continue
    }
    let merged = synthetic.get(current)
    if (merged === undefined) {
      const allOf = Array.isArray(rest.allOf) ? [...rest.allOf, target] : [target]
      merged = { ...rest, allOf }
      synthetic.set(current, merged)
    }
    return merged
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------------------------
// The walk

export function compare(walk: Walk, out: Out, path: string, oldRaw: SchemaNode, newRaw: SchemaNode): void {
  if (++walk.budget.steps > MAX_STEPS) {
    throw new FatalError(`schemas too complex to compare (more than ${MAX_STEPS} sub-schema pairs)`)
  }
  const o = resolve(walk.oldRoot, oldRaw)
  const n = resolve(walk.newRoot, newRaw)
  if (o === undefined || n === undefined) {
    if (!jsonEqual(oldRaw, newRaw)) {
      add(out, 'REFERENCE_UNRESOLVED', path, false, false, 'a $ref outside this document cannot be compared')
    }
    return
  }
  if (walk.depth >= MAX_DEPTH) {
    add(out, 'SCHEMA_TOO_DEEP', path, false, false, `nested deeper than ${MAX_DEPTH} levels`)
    return
  }
  if (typeof o === 'object' && typeof n === 'object') {
    let partners = walk.active.get(o)
    if (partners?.has(n)) return
    if (partners === undefined) {
      partners = new Set()
      walk.active.set(o, partners)
    }
    partners.add(n)
    walk.depth++
    try {
      compareResolved(walk, out, path, o, n)
    } finally {
      walk.depth--
      partners.delete(n)
    }
    return
  }
  compareResolved(walk, out, path, o, n)
}

/** Runs a sub-comparison and folds it into two verdicts. `swapped` compares a new-side node with an old-side one. */
export function probe(
  walk: Walk,
  a: SchemaNode,
  b: SchemaNode,
  swapped = false
): { backward: boolean; forward: boolean } {
  const sub: Walk = swapped
    ? { oldRoot: walk.newRoot, newRoot: walk.oldRoot, active: new Map(), budget: walk.budget, depth: walk.depth }
    : walk
  const changes: Out = []
  compare(sub, changes, '#', a, b)
  return { backward: changes.every((c) => c.backward), forward: changes.every((c) => c.forward) }
}

function compareResolved(walk: Walk, out: Out, path: string, o: SchemaNode, n: SchemaNode): void {
  if (o === false && n === false) return
  if (o === false) {
    add(out, 'SCHEMA_OPENED', path, true, false, 'the old schema accepted nothing here (false); the new one does')
    return
  }
  if (n === false) {
    add(out, 'SCHEMA_CLOSED', path, false, true, 'the new schema accepts nothing here (false)')
    return
  }
  const oAll = acceptsEverything(o)
  const nAll = acceptsEverything(n)
  if (isObject(o) && isObject(n)) compareAnnotations(out, path, o, n)
  if (oAll && nAll) return
  if (nAll) {
    add(out, 'CONSTRAINTS_REMOVED', path, true, false, 'the new schema accepts any value here; the old one did not')
    return
  }
  if (oAll || !isObject(o) || !isObject(n)) {
    add(out, 'CONSTRAINTS_ADDED', path, false, true, 'the old schema accepted any value here; the new one does not')
    return
  }
  compareUnknown(out, path, o, n)
  const oTypes = effectiveTypes(walk.oldRoot, o, 0)
  const nTypes = effectiveTypes(walk.newRoot, n, 0)
  if (enumValues(o) === undefined || enumValues(n) === undefined) compareTypes(out, path, oTypes, nTypes)
  compareEnum(out, path, o, n)
  if (share(oTypes, nTypes, 'string')) compareString(out, path, o, n)
  if (share(oTypes, nTypes, 'number')) compareNumber(out, path, o, n)
  if (share(oTypes, nTypes, 'object')) compareObject(walk, out, path, o, n)
  if (share(oTypes, nTypes, 'array')) compareArray(walk, out, path, o, n)
  compareAllOf(walk, out, path, o, n)
  compareSum(walk, out, path, o, n)
  compareNot(walk, out, path, o, n)
  compareConditional(walk, out, path, o, n)
}

// ---------------------------------------------------------------------------------------------------------------
// Annotations and keywords the diff does not know

const ANNOTATION_RULES: Record<string, string> = {
  $id: 'ID_CHANGED',
  $schema: 'DIALECT_CHANGED',
  $comment: 'COMMENT_CHANGED',
  title: 'TITLE_CHANGED',
  description: 'DESCRIPTION_CHANGED',
  default: 'DEFAULT_CHANGED',
  examples: 'EXAMPLES_CHANGED',
  deprecated: 'DEPRECATED_CHANGED',
  readOnly: 'READ_ONLY_CHANGED',
  writeOnly: 'WRITE_ONLY_CHANGED'
}

function compareAnnotations(out: Out, path: string, o: Record<string, unknown>, n: Record<string, unknown>): void {
  for (const [keyword, rule] of Object.entries(ANNOTATION_RULES)) {
    if (!jsonEqual(o[keyword], n[keyword])) {
      add(
        out,
        rule,
        childPath(path, keyword),
        true,
        true,
        `${keyword} changed (an annotation: validation is unchanged)`
      )
    }
  }
}

function compareUnknown(out: Out, path: string, o: Record<string, unknown>, n: Record<string, unknown>): void {
  for (const keyword of new Set([...Object.keys(o), ...Object.keys(n)])) {
    if (isAnnotationKeyword(keyword) || KNOWN_KEYWORDS.has(keyword)) continue
    if (!jsonEqual(o[keyword], n[keyword])) {
      add(
        out,
        'UNKNOWN_KEYWORD_CHANGED',
        childPath(path, keyword),
        false,
        false,
        `"${keyword}" changed; the checker does not know this keyword, so it cannot prove the change safe`
      )
    }
  }
}
