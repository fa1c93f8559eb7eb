import { add, addVerdict, compare, type Out, probe, type Walk } from './diff.ts'
import { acceptsEverything, childPath, isObject, isSchemaNode, ruleName, type SchemaNode } from './json.ts'
import { compareCount } from './scalars.ts'

/** Object keywords: properties against the content model, required, additionalProperties, dependencies. */

export function schemaMap(value: unknown): Record<string, SchemaNode> {
  if (!isObject(value)) return {}
  const result: Record<string, SchemaNode> = {}
  for (const [key, schema] of Object.entries(value)) if (isSchemaNode(schema)) result[key] = schema
  return result
}

export function schemaList(value: unknown): SchemaNode[] {
  return Array.isArray(value) ? value.filter(isSchemaNode) : []
}

export function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : []
}

function safePattern(pattern: string): RegExp | undefined {
  try {
    return new RegExp(pattern, 'u')
  } catch {
    return undefined
  }
}

const ContentModels = { OPEN: 'OPEN', CLOSED: 'CLOSED', PARTIALLY_OPEN: 'PARTIALLY_OPEN' } as const
type ContentModel = (typeof ContentModels)[keyof typeof ContentModels]

/** What a schema says about a property it does not declare: the schema that covers that name, and how. */
function undeclared(schema: Record<string, unknown>, name: string): { model: ContentModel; schema: SchemaNode } {
  for (const [pattern, covering] of Object.entries(schemaMap(schema.patternProperties))) {
    if (safePattern(pattern)?.test(name)) return { model: ContentModels.PARTIALLY_OPEN, schema: covering }
  }
  const rest = schema.additionalProperties ?? schema.unevaluatedProperties
  if (!isSchemaNode(rest) || acceptsEverything(rest)) return { model: ContentModels.OPEN, schema: true }
  if (rest === false) return { model: ContentModels.CLOSED, schema: false }
  return { model: ContentModels.PARTIALLY_OPEN, schema: rest }
}

const MODEL_WORDS: Record<ContentModel, string> = {
  OPEN: 'an open content model',
  CLOSED: 'a closed content model',
  PARTIALLY_OPEN: 'a partially open content model'
}

export function compareObject(
  walk: Walk,
  out: Out,
  path: string,
  o: Record<string, unknown>,
  n: Record<string, unknown>
): void {
  const op = schemaMap(o.properties)
  const np = schemaMap(n.properties)
  for (const name of new Set([...Object.keys(op), ...Object.keys(np)])) {
    const where = childPath(path, 'properties', name)
    const before = op[name]
    const after = np[name]
    if (before !== undefined && after !== undefined) {
      compare(walk, out, where, before, after)
    } else if (after !== undefined) {
      const cover = undeclared(o, name)
      const r = probe(walk, cover.schema, after)
      const reasons = [`property "${name}" added to ${MODEL_WORDS[cover.model]}`]
      if (!r.backward) reasons.push(`old data may carry "${name}" with values the new definition rejects`)
      if (!r.forward) reasons.push(`old readers reject some values of "${name}" that new data may carry`)
      addVerdict(out, `PROPERTY_ADDED_TO_${cover.model}_CONTENT_MODEL`, where, r, reasons.join(': '))
    } else if (before !== undefined) {
      const cover = undeclared(n, name)
      const r = probe(walk, before, cover.schema)
      const reasons = [`property "${name}" removed from ${MODEL_WORDS[cover.model]}`]
      if (!r.backward) reasons.push(`old data carrying "${name}" is rejected`)
      if (!r.forward) reasons.push(`old readers still check "${name}" and reject values new data may carry`)
      addVerdict(out, `PROPERTY_REMOVED_FROM_${cover.model}_CONTENT_MODEL`, where, r, reasons.join(': '))
    }
  }

  const oldRequired = stringList(o.required)
  const newRequired = stringList(n.required)
  for (const name of newRequired.filter((r) => !oldRequired.includes(r))) {
    add(
      out,
      'REQUIRED_PROPERTY_ADDED',
      childPath(path, 'required'),
      false,
      true,
      `"${name}" is now required: old data without it is rejected (defaults are not applied when validating)`
    )
  }
  for (const name of oldRequired.filter((r) => !newRequired.includes(r))) {
    add(
      out,
      'REQUIRED_PROPERTY_REMOVED',
      childPath(path, 'required'),
      true,
      false,
      `"${name}" is no longer required: old readers reject new data without it`
    )
  }

  compareRest(walk, out, path, 'additionalProperties', 'ADDITIONAL_PROPERTIES', o.additionalProperties, n)
  const opp = schemaMap(o.patternProperties)
  const npp = schemaMap(n.patternProperties)
  for (const pattern of new Set([...Object.keys(opp), ...Object.keys(npp)])) {
    const where = childPath(path, 'patternProperties', pattern)
    const before = opp[pattern]
    const after = npp[pattern]
    if (before !== undefined && after !== undefined) compare(walk, out, where, before, after)
    else if (after !== undefined) {
      const r = probe(walk, restOf(o.additionalProperties), after)
      addVerdict(out, 'PATTERN_PROPERTY_ADDED', where, r, `patternProperties ${pattern} added`)
    } else if (before !== undefined) {
      const r = probe(walk, before, restOf(n.additionalProperties))
      addVerdict(out, 'PATTERN_PROPERTY_REMOVED', where, r, `patternProperties ${pattern} removed`)
    }
  }
  compareCount(out, path, 'minProperties', 'min', o, n)
  compareCount(out, path, 'maxProperties', 'max', o, n)
  compareOptional(walk, out, path, 'propertyNames', o.propertyNames, n.propertyNames)
  compareOptional(walk, out, path, 'unevaluatedProperties', o.unevaluatedProperties, n.unevaluatedProperties)
  compareDependencies(walk, out, path, o, n)
}

export function restOf(value: unknown): SchemaNode {
  return isSchemaNode(value) ? value : true
}

/**
 * `additionalProperties` (or the `items` after a tuple): what the schema says about everything it does not name.
 * Going from absent/true to false closes the content model; the reverse opens it.
 */
export function compareRest(
  walk: Walk,
  out: Out,
  path: string,
  keyword: string,
  name: string,
  oldValue: unknown,
  newSchema: Record<string, unknown>
): void {
  const a = restOf(oldValue)
  const b = restOf(newSchema[keyword])
  const where = childPath(path, keyword)
  const aAll = acceptsEverything(a)
  const bAll = acceptsEverything(b)
  if ((aAll && bAll) || (a === false && b === false)) return
  if (aAll && b === false) {
    add(
      out,
      `${name}_CLOSED`,
      where,
      false,
      true,
      `${keyword}: false closes an open content model: old data may hold more`
    )
  } else if (a === false && bAll) {
    add(out, `${name}_OPENED`, where, true, false, `${keyword} false → open: old readers reject the extra content`)
  } else if (aAll || b === false) {
    add(out, `${name}_NARROWED`, where, false, true, `${keyword} narrowed: old extra content may not match`)
  } else if (bAll || a === false) {
    add(out, `${name}_EXTENDED`, where, true, false, `${keyword} widened: old readers may reject the extra content`)
  } else {
    compare(walk, out, where, a, b)
  }
}

/** A sub-schema keyword where absence means `true` (`propertyNames`, `then`, …). */
export function compareOptional(
  walk: Walk,
  out: Out,
  path: string,
  keyword: string,
  ov: unknown,
  nv: unknown,
  rulePrefix = ruleName(keyword)
): void {
  const before = isSchemaNode(ov) ? ov : undefined
  const after = isSchemaNode(nv) ? nv : undefined
  if (before === undefined && after === undefined) return
  const where = childPath(path, keyword)
  if (before !== undefined && after !== undefined) {
    compare(walk, out, where, before, after)
    return
  }
  const r = probe(walk, before ?? true, after ?? true)
  if (r.backward && r.forward) return
  const rule = `${rulePrefix}_${before === undefined ? 'ADDED' : 'REMOVED'}`
  addVerdict(out, rule, where, r, `${keyword} ${before === undefined ? 'added' : 'removed'}`)
}

function compareDependencies(
  walk: Walk,
  out: Out,
  path: string,
  o: Record<string, unknown>,
  n: Record<string, unknown>
): void {
  // draft-07 `dependencies` holds both kinds: arrays of names and schemas.
  const split = (schema: Record<string, unknown>) => {
    const names: Record<string, string[]> = {}
    const schemas: Record<string, SchemaNode> = {}
    for (const keyword of ['dependencies', 'dependentRequired', 'dependentSchemas']) {
      const value = schema[keyword]
      if (!isObject(value)) continue
      for (const [key, dep] of Object.entries(value)) {
        if (Array.isArray(dep)) names[key] = stringList(dep)
        else if (isSchemaNode(dep)) schemas[key] = dep
      }
    }
    return { names, schemas }
  }
  const before = split(o)
  const after = split(n)
  const where = (kw: string, key: string) => childPath(path, kw, key)
  for (const key of new Set([...Object.keys(before.names), ...Object.keys(after.names)])) {
    const a = before.names[key]
    const b = after.names[key]
    const at = where('dependentRequired', key)
    if (a === undefined) add(out, 'DEPENDENT_REQUIRED_ADDED', at, false, true, `"${key}" now requires ${b}`)
    else if (b === undefined) add(out, 'DEPENDENT_REQUIRED_REMOVED', at, true, false, `"${key}" requires nothing now`)
    else {
      if (b.some((x) => !a.includes(x))) add(out, 'DEPENDENT_REQUIRED_EXTENDED', at, false, true, `"${key}": more`)
      if (a.some((x) => !b.includes(x))) add(out, 'DEPENDENT_REQUIRED_NARROWED', at, true, false, `"${key}": fewer`)
    }
  }
  for (const key of new Set([...Object.keys(before.schemas), ...Object.keys(after.schemas)])) {
    const at = childPath(path, 'dependentSchemas')
    compareOptional(walk, out, at, key, before.schemas[key], after.schemas[key], 'DEPENDENT_SCHEMA')
  }
}
