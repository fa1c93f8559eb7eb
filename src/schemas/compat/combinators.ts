import { add, addVerdict, cannotDecide, compare, isAnnotationChange, type Out, probe, type Walk } from './diff.ts'
import { acceptsEverything, childPath, isObject, isSchemaNode, jsonEqual, ruleName, type SchemaNode } from './json.ts'
import { compareOptional, schemaList } from './objects.ts'
import { deriveNode, resolve } from './refs.ts'
import { effectiveTypes, enumValues, intersectTypes } from './types.ts'

/** allOf, anyOf/oneOf, not and if/then/else. */

const COMBINATORS = ['allOf', 'anyOf', 'oneOf', 'not', 'if', 'then', 'else']
const stripped = new WeakMap<object, SchemaNode>()

/** The schema without its combinators: what its own keywords say. */
function strip(schema: Record<string, unknown>): SchemaNode {
  let result = stripped.get(schema)
  if (result === undefined) {
    result = deriveNode(schema, Object.fromEntries(Object.entries(schema).filter(([k]) => !COMBINATORS.includes(k))))
    stripped.set(schema, result)
  }
  return result
}

function sameMembers(a: readonly SchemaNode[], b: readonly SchemaNode[]): boolean {
  return a.length === b.length && a.every((x) => b.some((y) => jsonEqual(x, y)))
}

export function compareAllOf(
  walk: Walk,
  out: Out,
  path: string,
  o: Record<string, unknown>,
  n: Record<string, unknown>
): void {
  const a = schemaList(o.allOf)
  const b = schemaList(n.allOf)
  if ((a.length === 0 && b.length === 0) || sameMembers(a, b)) return
  if (a.length === b.length) {
    for (const [i, member] of a.entries()) compare(walk, out, childPath(path, 'allOf', i), member, b[i]!)
    return
  }
  b.forEach((member, j) => {
    if (a.some((m) => jsonEqual(m, member))) return
    // Old data still passes the new member when the old schema already implied it.
    const backward = a.some((m) => probe(walk, m, member).backward) || probe(walk, strip(o), member).backward
    add(out, 'ALL_OF_MEMBER_ADDED', childPath(path, 'allOf', j), backward, true, 'allOf member added')
  })
  a.forEach((member, i) => {
    if (b.some((m) => jsonEqual(m, member))) return
    const forward = b.some((m) => probe(walk, member, m).forward) || probe(walk, member, strip(n)).forward
    add(out, 'ALL_OF_MEMBER_REMOVED', childPath(path, 'allOf', i), true, forward, 'allOf member removed')
  })
}

type SumKeyword = 'anyOf' | 'oneOf'

function sumOf(
  schema: Record<string, unknown>,
  only?: SumKeyword
): { keyword: SumKeyword; branches: SchemaNode[] } | undefined {
  for (const keyword of ['anyOf', 'oneOf'] as const) {
    if ((only === undefined || only === keyword) && Array.isArray(schema[keyword])) {
      return { keyword, branches: schemaList(schema[keyword]) }
    }
  }
  return undefined
}

/** The values two schemas accept as one JSON value each: no value matches both (proven, or false). */
function disjoint(root: SchemaNode, x: SchemaNode, y: SchemaNode): boolean {
  const rx = resolve(root, x)
  const ry = resolve(root, y)
  if (rx === undefined || ry === undefined) return false
  if (rx === false || ry === false) return true
  if (rx === true || ry === true) return false
  const shared = intersectTypes(effectiveTypes(root, rx, 0), effectiveTypes(root, ry, 0))
  if (shared.size === 0) return true
  const valuesDisjoint = (a: SchemaNode | undefined, b: SchemaNode | undefined) => {
    const ea = isObject(a) ? enumValues(a) : undefined
    const eb = isObject(b) ? enumValues(b) : undefined
    return ea !== undefined && eb !== undefined && !ea.some((v) => eb.some((w) => jsonEqual(v, w)))
  }
  if (valuesDisjoint(rx, ry)) return true
  // A discriminator: objects only, a property both restrict to different values, and one of them requires it.
  if (shared.size !== 1 || !shared.has('object')) return false
  const px = isObject(rx.properties) ? rx.properties : {}
  const py = isObject(ry.properties) ? ry.properties : {}
  const required = (s: Record<string, unknown>, key: string) => Array.isArray(s.required) && s.required.includes(key)
  return Object.keys(px).some((key) => {
    if (!Object.hasOwn(py, key) || !(required(rx, key) || required(ry, key))) return false
    const vx = isSchemaNode(px[key]) ? resolve(root, px[key]) : undefined
    const vy = isSchemaNode(py[key]) ? resolve(root, py[key]) : undefined
    return valuesDisjoint(vx, vy)
  })
}

/** No value matches two branches, so `oneOf` accepts what `anyOf` over them does. */
function exclusive(root: SchemaNode, branches: readonly SchemaNode[]): boolean {
  return branches.every((x, i) => branches.slice(i + 1).every((y) => disjoint(root, x, y)))
}

export function compareSum(
  walk: Walk,
  out: Out,
  path: string,
  o: Record<string, unknown>,
  n: Record<string, unknown>
): void {
  const both = (s: Record<string, unknown>) => Array.isArray(s.anyOf) && Array.isArray(s.oneOf)
  if (!both(o) && !both(n)) {
    compareSumOf(walk, out, path, o, n)
    return
  }
  // anyOf and oneOf side by side are two conjuncts: compare each with its own kind.
  compareSumOf(walk, out, path, o, n, 'anyOf')
  compareSumOf(walk, out, path, o, n, 'oneOf')
}

/**
 * anyOf/oneOf, reasoning as if every branch list were anyOf, then guarding oneOf: a value that matches two branches
 * fails it, so the anyOf reasoning holds for a oneOf only when its branches are provably disjoint (types, enum/const,
 * or a discriminating property). Otherwise the direction that relies on it cannot be decided.
 */
function compareSumOf(
  walk: Walk,
  out: Out,
  path: string,
  o: Record<string, unknown>,
  n: Record<string, unknown>,
  only?: SumKeyword
): void {
  const a = sumOf(o, only)
  const b = sumOf(n, only)
  const local: Out = []
  compareBranches(walk, local, path, o, n, a, b)
  out.push(...local)
  const changed = local.filter((c) => !isAnnotationChange(c))
  const why = (side: string) =>
    `the ${side} oneOf's branches are not provably disjoint, so a value may match two of them and fail it`
  if (b?.keyword === 'oneOf' && changed.some((c) => c.backward) && !exclusive(walk.newRoot, b.branches)) {
    cannotDecide(out, 'ONE_OF_OVERLAP', childPath(path, 'oneOf'), 'oneOf', `${why('new')} (old data)`, false, true)
  }
  if (a?.keyword === 'oneOf' && changed.some((c) => c.forward) && !exclusive(walk.oldRoot, a.branches)) {
    cannotDecide(out, 'ONE_OF_OVERLAP', childPath(path, 'oneOf'), 'oneOf', `${why('old')} (new data)`, true, false)
  }
}

function compareBranches(
  walk: Walk,
  out: Out,
  path: string,
  o: Record<string, unknown>,
  n: Record<string, unknown>,
  a: ReturnType<typeof sumOf>,
  b: ReturnType<typeof sumOf>
): void {
  if (a === undefined && b === undefined) return
  if (a === undefined) {
    // Old values pass the new anyOf when one of the old schema's parts (its own keywords, or an allOf member it
    // already required) implies a branch: allOf [A, B] → anyOf [A, B] keeps every old value.
    const parts = [strip(o), ...schemaList(o.allOf)]
    const backward = b!.branches.some((branch) => parts.some((part) => probe(walk, part, branch).backward))
    const whole = strip(o)
    const forward = b!.branches.every((branch) => probe(walk, whole, branch).forward)
    add(out, `${ruleName(b!.keyword)}_ADDED`, childPath(path, b!.keyword), backward, forward, `${b!.keyword} added`)
    return
  }
  if (b === undefined) {
    const whole = strip(n)
    const backward = a.branches.every((branch) => probe(walk, branch, whole).backward)
    // The mirror of the case above: anyOf [A, B] → allOf [A, B] keeps every new value readable by old readers.
    const parts = [whole, ...schemaList(n.allOf)]
    const forward = a.branches.some((branch) => parts.some((part) => probe(walk, branch, part).forward))
    add(out, `${ruleName(a.keyword)}_REMOVED`, childPath(path, a.keyword), backward, forward, `${a.keyword} removed`)
    return
  }
  const where = (i: number) => childPath(path, b.keyword, i)
  if (a.keyword !== b.keyword) {
    // A value matching several branches passes anyOf but fails oneOf; with disjoint branches both mean the same.
    if (b.keyword === 'anyOf') {
      const same = exclusive(walk.oldRoot, a.branches)
      add(out, 'COMBINED_CRITERION_EXTENDED', childPath(path, 'anyOf'), true, same, 'oneOf became anyOf')
    } else {
      const message = 'anyOf became oneOf: values matching more than one branch are now rejected'
      const same = exclusive(walk.newRoot, b.branches)
      add(out, 'COMBINED_CRITERION_NARROWED', childPath(path, 'oneOf'), same, true, message)
    }
  }
  if (sameMembers(a.branches, b.branches)) return
  if (a.branches.length === b.branches.length) {
    for (const [i, branch] of a.branches.entries()) compare(walk, out, where(i), branch, b.branches[i]!)
    return
  }
  const name = ruleName(b.keyword)
  const grew = b.branches.length > a.branches.length
  a.branches.forEach((branch, i) => {
    if (b.branches.some((x) => jsonEqual(x, branch))) return
    const backward = b.branches.some((x) => probe(walk, branch, x).backward)
    const rule = `${name}_BRANCH_${grew ? 'CHANGED' : 'REMOVED'}`
    add(
      out,
      rule,
      childPath(path, a.keyword, i),
      backward,
      true,
      `${a.keyword} branch ${i} has no equal in the new one`
    )
  })
  b.branches.forEach((branch, j) => {
    if (a.branches.some((x) => jsonEqual(x, branch))) return
    const forward = a.branches.some((x) => probe(walk, x, branch).forward)
    add(out, `${name}_BRANCH_${grew ? 'ADDED' : 'CHANGED'}`, where(j), true, forward, `${b.keyword} branch ${j} is new`)
  })
}

export function compareNot(
  walk: Walk,
  out: Out,
  path: string,
  o: Record<string, unknown>,
  n: Record<string, unknown>
): void {
  const a = isSchemaNode(o.not) ? o.not : undefined
  const b = isSchemaNode(n.not) ? n.not : undefined
  if (a === undefined && b === undefined) return
  const where = childPath(path, 'not')
  if (a !== undefined && b !== undefined) {
    // not A ⊆ not B exactly when B ⊆ A: compare the inner schemas the other way round.
    const r = probe(walk, b, a, true)
    if (!r.backward || !r.forward) addVerdict(out, 'NOT_SCHEMA_CHANGED', where, r, 'not schema changed')
  } else if (b !== undefined) {
    add(out, 'NOT_ADDED', where, b === false, true, 'not added: old values matching it are rejected')
  } else {
    add(out, 'NOT_REMOVED', where, true, a === false, 'not removed: old readers reject values matching it')
  }
}

export function compareConditional(
  walk: Walk,
  out: Out,
  path: string,
  o: Record<string, unknown>,
  n: Record<string, unknown>
): void {
  const a = isSchemaNode(o.if) ? o.if : undefined
  const b = isSchemaNode(n.if) ? n.if : undefined
  if (a === undefined && b === undefined) return // then/else without if do nothing
  const inert = (s: Record<string, unknown>) =>
    acceptsEverything(isSchemaNode(s.then) ? s.then : true) && acceptsEverything(isSchemaNode(s.else) ? s.else : true)
  const where = childPath(path, 'if')
  if (a !== undefined && b !== undefined) {
    if (jsonEqual(a, b)) {
      compareOptional(walk, out, path, 'then', o.then, n.then)
      compareOptional(walk, out, path, 'else', o.else, n.else)
    } else if (inert(o) && inert(n)) {
      add(out, 'CONDITION_CHANGED', where, true, true, 'if changed; then/else accept every value, so it has no effect')
    } else {
      const why = 'the if schema changed, so which of then/else applies to a value may differ'
      cannotDecide(out, 'CONDITION_CHANGED', where, 'if', why, inert(n), inert(o))
    }
  } else if (b !== undefined) {
    add(out, 'CONDITIONAL_ADDED', where, inert(n), true, 'if/then/else added: old values may fail the new branch')
  } else {
    add(out, 'CONDITIONAL_REMOVED', where, true, inert(o), 'if/then/else removed: old readers still apply it')
  }
}
