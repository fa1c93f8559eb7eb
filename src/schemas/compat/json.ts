/** Small JSON helpers for the schema diff: structural equality, JSON Pointers, keyword classes. */

export type SchemaNode = boolean | { readonly [keyword: string]: unknown }

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function isSchemaNode(value: unknown): value is SchemaNode {
  return typeof value === 'boolean' || isObject(value)
}

/** Structural equality of JSON values (object key order does not matter). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a === 'number' && typeof b === 'number') return a === b
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((item, i) => jsonEqual(item, b[i]))
  }
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a)
    if (keys.length !== Object.keys(b).length) return false
    return keys.every((key) => Object.hasOwn(b, key) && jsonEqual(a[key], b[key]))
  }
  return false
}

/** `a` ⊆ `b` for lists of JSON values, by structural equality. */
export function jsonSubset(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.every((x) => b.some((y) => jsonEqual(x, y)))
}

export function escapePointer(segment: string): string {
  return segment.replaceAll('~', '~0').replaceAll('/', '~1')
}

export function unescapePointer(segment: string): string {
  return segment.replaceAll('~1', '/').replaceAll('~0', '~')
}

/** Appends reference tokens to a `#/…` pointer. */
export function childPath(path: string, ...segments: (string | number)[]): string {
  return segments.reduce<string>((acc, segment) => `${acc}/${escapePointer(String(segment))}`, path)
}

/**
 * Keywords that never change which values are valid. Changing them is compatible both ways. `x-` extension keywords
 * are treated the same way.
 */
export const ANNOTATION_KEYWORDS: ReadonlySet<string> = new Set([
  '$schema',
  '$id',
  // draft-04's identifier; in later drafts an unknown keyword, which validators ignore. Never an assertion.
  'id',
  '$anchor',
  '$dynamicAnchor',
  '$comment',
  '$defs',
  'definitions',
  '$vocabulary',
  'title',
  'description',
  'default',
  'examples',
  'deprecated',
  'readOnly',
  'writeOnly',
  // An annotation in 2020-12: validators (ajv included) do not assert it.
  'contentSchema'
])

/** Assertion and applicator keywords the diff understands; a change to any other keyword cannot be proven safe. */
export const KNOWN_KEYWORDS: ReadonlySet<string> = new Set([
  '$ref',
  // Not modelled: any difference around them is "cannot decide" (diff.ts).
  '$dynamicRef',
  '$recursiveRef',
  'type',
  'enum',
  'const',
  'minLength',
  'maxLength',
  'pattern',
  'format',
  'contentEncoding',
  'contentMediaType',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'multipleOf',
  'properties',
  'required',
  'additionalProperties',
  'patternProperties',
  'minProperties',
  'maxProperties',
  'dependentRequired',
  'dependentSchemas',
  'dependencies',
  'propertyNames',
  'unevaluatedProperties',
  'items',
  'prefixItems',
  'additionalItems',
  'minItems',
  'maxItems',
  'uniqueItems',
  'contains',
  'minContains',
  'maxContains',
  'unevaluatedItems',
  'allOf',
  'anyOf',
  'oneOf',
  'not',
  'if',
  'then',
  'else'
])

export function isAnnotationKeyword(keyword: string): boolean {
  return ANNOTATION_KEYWORDS.has(keyword) || keyword.startsWith('x-')
}

/** `true`, `{}` or a schema of annotations only: accepts every value. */
export function acceptsEverything(schema: SchemaNode | undefined): boolean {
  if (schema === undefined || schema === true) return true
  if (schema === false) return false
  return Object.keys(schema).every(isAnnotationKeyword)
}

export function acceptsNothing(schema: SchemaNode | undefined): boolean {
  return schema === false
}

/** `minLength` → `MIN_LENGTH`, for rule names. */
export function ruleName(keyword: string): string {
  return keyword.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()
}

export function describeValue(value: unknown, max = 60): string {
  const text = JSON.stringify(value) ?? String(value)
  return text.length > max ? `${text.slice(0, max)}…` : text
}
