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
  ruleName,
  type SchemaNode
} from './json.ts'
import { compareObject } from './objects.ts'
import { resolveRef } from './refs.ts'
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
 * cannot prove anything (an unknown keyword, an unresolvable `$ref`, a changed `if`, `$dynamicRef`), it says
 * "cannot decide", naming the construct, and counts it as a break.
 *
 * Limits, on purpose: `$ref` resolves inside the same document only (JSON Pointer and plain-name fragments, see
 * refs.ts), and a property declared in `properties` is compared on that declaration alone even when a
 * `patternProperties` pattern also matches it. What it cannot decide it names (`cannotDecide`) and treats as a break.
 */

const MAX_DEPTH = 64
/** Upper bound on compared schema pairs: combinators make probes multiply, and input may be hostile. */
const MAX_STEPS = 200_000

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

/**
 * A change the checker cannot decide: it names the construct and fails closed, a break in every direction it could
 * not prove (`backward`/`forward` true only where the change is safe whatever the construct does).
 */
export function cannotDecide(
  out: Out,
  type: string,
  path: string,
  construct: string,
  why: string,
  backward = false,
  forward = false
): void {
  out.push({ type, path, backward, forward, message: `cannot decide ${construct}: ${why}`, undecided: construct })
}

// ---------------------------------------------------------------------------------------------------------------
// The walk

export function compare(walk: Walk, out: Out, path: string, oldRaw: SchemaNode, newRaw: SchemaNode): void {
  if (++walk.budget.steps > MAX_STEPS) {
    throw new FatalError(`schemas too complex to compare (more than ${MAX_STEPS} sub-schema pairs)`)
  }
  const ro = resolveRef(walk.oldRoot, oldRaw)
  const rn = resolveRef(walk.newRoot, newRaw)
  if (!('node' in ro) || !('node' in rn)) {
    // The same reference to another document on both sides names the same schema (registries pin references);
    // anything else unresolved is undecidable: a local reference that names nothing, or one side's target unknown.
    const bothExternal = 'missing' in ro && 'missing' in rn && ro.external && rn.external
    if (bothExternal && jsonEqual(oldRaw, newRaw)) return
    const miss = 'missing' in ro ? ro : (rn as { missing: string; external: boolean })
    const why = miss.external
      ? 'it names another document, which the checker does not have'
      : 'it names nothing in this document (no such $defs pointer, $anchor or plain-name $id)'
    cannotDecide(out, 'REFERENCE_UNRESOLVED', path, `$ref ${JSON.stringify(miss.missing)}`, why)
    return
  }
  const o = ro.node
  const n = rn.node
  if (walk.depth >= MAX_DEPTH) {
    cannotDecide(out, 'SCHEMA_TOO_DEEP', path, 'this sub-schema', `nested deeper than ${MAX_DEPTH} levels`)
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

/** Two verdicts folded from a sub-comparison; `undecided` when every change that breaks one is undecided. */
export interface Verdict {
  readonly backward: boolean
  readonly forward: boolean
  readonly undecided?: string
}

/** Runs a sub-comparison and folds it into two verdicts. `swapped` compares a new-side node with an old-side one. */
export function probe(walk: Walk, a: SchemaNode, b: SchemaNode, swapped = false): Verdict {
  const sub: Walk = swapped
    ? { oldRoot: walk.newRoot, newRoot: walk.oldRoot, active: new Map(), budget: walk.budget, depth: walk.depth }
    : walk
  const changes: Out = []
  compare(sub, changes, '#', a, b)
  const backward = changes.every((c) => c.backward)
  const forward = changes.every((c) => c.forward)
  const blamed = changes.filter((c) => (!backward && !c.backward) || (!forward && !c.forward))
  const undecided = blamed.every((c) => c.undecided !== undefined) ? blamed[0]?.undecided : undefined
  return undecided === undefined ? { backward, forward } : { backward, forward, undecided }
}

/** A change whose verdicts come from a probe: it says "cannot decide" when the probe could not. */
export function addVerdict(out: Out, type: string, path: string, verdict: Verdict, message: string): void {
  if (verdict.undecided === undefined) add(out, type, path, verdict.backward, verdict.forward, message)
  else cannotDecide(out, type, path, verdict.undecided, message, verdict.backward, verdict.forward)
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
  compareDynamicRefs(walk, out, path, o, n)
  compareUnevaluated(walk, out, path, o, n)
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
  id: 'ID_CHANGED',
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

/** A change to an annotation only (`DESCRIPTION_CHANGED`, …): it changes no verdict. */
export function isAnnotationChange(change: SchemaChange): boolean {
  return Object.values(ANNOTATION_RULES).includes(change.type)
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
      const why = 'the checker does not know this keyword, so it cannot prove the change safe'
      cannotDecide(out, 'UNKNOWN_KEYWORD_CHANGED', childPath(path, keyword), `keyword "${keyword}"`, why)
    }
  }
}

/** Keywords whose subschemas evaluate properties or items of the same instance (what `unevaluated*` looks at). */
const IN_PLACE = ['allOf', 'anyOf', 'oneOf', 'not', 'if', 'then', 'else', 'dependentSchemas', '$ref', '$dynamicRef']
const EVALUATES_PROPERTIES = ['properties', 'patternProperties', 'additionalProperties']
const EVALUATES_ITEMS = ['prefixItems', 'items', 'additionalItems', 'contains']

function containsRef(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(containsRef)
  if (!isObject(value)) return false
  return Object.entries(value).some(([k, v]) => (k === '$ref' && typeof v === 'string') || containsRef(v))
}

/**
 * `unevaluatedProperties`/`unevaluatedItems` depend on what the in-place subschemas (allOf, anyOf, if, $ref, …)
 * evaluated: an allOf member that stops declaring a property makes it unevaluated. Without in-place subschemas the
 * content model rules decide it (objects.ts, like `additionalProperties`); with them, any change to what evaluates
 * properties (or items) cannot be decided.
 */
function compareUnevaluated(
  walk: Walk,
  out: Out,
  path: string,
  o: Record<string, unknown>,
  n: Record<string, unknown>
): void {
  for (const [keyword, own] of [
    ['unevaluatedProperties', EVALUATES_PROPERTIES],
    ['unevaluatedItems', EVALUATES_ITEMS]
  ] as const) {
    const present = (s: Record<string, unknown>) =>
      isSchemaNode(s[keyword]) && !acceptsEverything(s[keyword] as SchemaNode)
    if (!present(o) && !present(n)) continue
    if (!IN_PLACE.some((k) => o[k] !== undefined || n[k] !== undefined)) continue
    const around = [...IN_PLACE, ...own]
    const changed = around.find((k) => !jsonEqual(o[k], n[k]))
    const viaRef =
      changed === undefined && around.some((k) => containsRef(o[k])) && !jsonEqual(walk.oldRoot, walk.newRoot)
    if (changed === undefined && !viaRef) continue
    const why = `it depends on what the subschemas next to it evaluate, and ${changed ?? 'what a $ref there names'} changed`
    cannotDecide(out, `${ruleName(keyword)}_CONTEXT_CHANGED`, childPath(path, keyword), keyword, why)
  }
}

/**
 * `$dynamicRef` (2020-12) and `$recursiveRef` (2019-09) resolve through the dynamic scope at validation time: the
 * checker does not model it, so any difference in the documents that hold one is undecidable.
 */
function compareDynamicRefs(
  walk: Walk,
  out: Out,
  path: string,
  o: Record<string, unknown>,
  n: Record<string, unknown>
): void {
  for (const keyword of ['$dynamicRef', '$recursiveRef']) {
    if (o[keyword] === undefined && n[keyword] === undefined) continue
    if (jsonEqual(o[keyword], n[keyword]) && jsonEqual(walk.oldRoot, walk.newRoot)) continue
    const why = 'it resolves through the dynamic scope at validation time, which the checker does not model'
    cannotDecide(out, 'DYNAMIC_REFERENCE', childPath(path, keyword), keyword, why)
  }
}
