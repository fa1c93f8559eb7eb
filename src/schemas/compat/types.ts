import { add, type Out } from './diff.ts'
import { childPath, describeValue, jsonEqual, type SchemaNode } from './json.ts'
import { schemaList } from './objects.ts'
import { resolve } from './refs.ts'

/** JSON types, `enum` and `const`: which kinds of values a schema accepts. */

const ALL_TYPES = ['null', 'boolean', 'object', 'array', 'number', 'string'] as const
type JsonType = 'null' | 'boolean' | 'object' | 'array' | 'number' | 'integer' | 'string'
type TypeSet = ReadonlySet<JsonType>

function typeOfValue(value: unknown): JsonType {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number'
  if (typeof value === 'object') return 'object'
  return typeof value === 'boolean' ? 'boolean' : 'string'
}

/** A ⊆ B, with integer ⊂ number. */
function typeSubset(a: TypeSet, b: TypeSet): boolean {
  for (const t of a) if (!b.has(t) && !(t === 'integer' && b.has('number'))) return false
  return true
}

export function intersectTypes(a: TypeSet, b: TypeSet): Set<JsonType> {
  const result = new Set<JsonType>()
  for (const t of a) {
    if (b.has(t)) result.add(t)
    else if (t === 'number' && b.has('integer')) result.add('integer')
    else if (t === 'integer' && b.has('number')) result.add('integer')
  }
  return result
}

/** The JSON types a schema can accept, from `type`, `enum`/`const` and its combinators. */
export function effectiveTypes(root: SchemaNode, node: SchemaNode, depth: number): Set<JsonType> {
  const resolved = depth > 16 ? true : resolve(root, node)
  if (resolved === undefined || resolved === true) return new Set(ALL_TYPES)
  if (resolved === false) return new Set()
  let types = new Set<JsonType>(ALL_TYPES)
  const declared = resolved.type
  if (typeof declared === 'string' || Array.isArray(declared)) {
    const list = (Array.isArray(declared) ? declared : [declared]).filter((t): t is JsonType =>
      ['null', 'boolean', 'object', 'array', 'number', 'integer', 'string'].includes(String(t))
    )
    types = new Set(list)
    if (types.has('number')) types.delete('integer')
  }
  const values = enumValues(resolved)
  if (values !== undefined) types = intersectTypes(types, new Set(values.map(typeOfValue)))
  for (const member of schemaList(resolved.allOf))
    types = intersectTypes(types, effectiveTypes(root, member, depth + 1))
  for (const keyword of ['anyOf', 'oneOf'] as const) {
    const branches = schemaList(resolved[keyword])
    if (branches.length === 0) continue
    const union = new Set<JsonType>()
    for (const branch of branches) for (const t of effectiveTypes(root, branch, depth + 1)) union.add(t)
    types = intersectTypes(types, union)
  }
  return types
}

function describeTypes(types: TypeSet): string {
  if (types.size === 0) return 'nothing'
  if (typeSubset(new Set(ALL_TYPES), types)) return 'any type'
  return [...types].sort().join(' | ')
}

export function share(a: TypeSet, b: TypeSet, family: 'string' | 'number' | 'object' | 'array'): boolean {
  const has = (s: TypeSet) => s.has(family) || (family === 'number' && s.has('integer'))
  return has(a) && has(b)
}

export function compareTypes(out: Out, path: string, o: TypeSet, n: TypeSet): void {
  const widened = typeSubset(o, n)
  const narrowed = typeSubset(n, o)
  if (widened && narrowed) return
  const where = childPath(path, 'type')
  const change = `${describeTypes(o)} → ${describeTypes(n)}`
  if (widened)
    add(out, 'TYPE_EXTENDED', where, true, false, `type widened (${change}): old readers reject the new types`)
  else if (narrowed) {
    add(
      out,
      'TYPE_NARROWED',
      where,
      false,
      true,
      `type narrowed (${change}): old data of the dropped types is rejected`
    )
  } else add(out, 'TYPE_CHANGED', where, false, false, `type changed (${change})`)
}

export function enumValues(schema: Record<string, unknown>): unknown[] | undefined {
  if (Object.hasOwn(schema, 'const')) return [schema.const]
  return Array.isArray(schema.enum) ? schema.enum : undefined
}

export function compareEnum(out: Out, path: string, o: Record<string, unknown>, n: Record<string, unknown>): void {
  const ov = enumValues(o)
  const nv = enumValues(n)
  if (ov === undefined && nv === undefined) return
  const where = childPath(path, Object.hasOwn(n, 'const') || Object.hasOwn(o, 'const') ? 'const' : 'enum')
  if (ov === undefined) {
    add(out, 'ENUM_ADDED', where, false, true, `values restricted to ${describeValue(nv)}: other old values rejected`)
    return
  }
  if (nv === undefined) {
    add(out, 'ENUM_REMOVED', where, true, false, `value list ${describeValue(ov)} removed: old readers reject others`)
    return
  }
  const removed = ov.filter((v) => !nv.some((w) => jsonEqual(v, w)))
  const added = nv.filter((v) => !ov.some((w) => jsonEqual(v, w)))
  if (removed.length > 0) {
    add(
      out,
      'ENUM_VALUES_REMOVED',
      where,
      false,
      true,
      `${describeValue(removed)} removed: old data holding them fails`
    )
  }
  if (added.length > 0) {
    add(out, 'ENUM_VALUES_ADDED', where, true, false, `${describeValue(added)} added: old readers reject them`)
  }
}
