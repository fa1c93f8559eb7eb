import { add, cannotDecide, compare, type Out, probe, type Walk } from './diff.ts'
import { acceptsEverything, childPath, isSchemaNode, jsonEqual, ruleName, type SchemaNode } from './json.ts'
import { compareOptional, schemaList } from './objects.ts'
import { deriveNode } from './refs.ts'

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

function sumOf(schema: Record<string, unknown>): { keyword: 'anyOf' | 'oneOf'; branches: SchemaNode[] } | undefined {
  if (Array.isArray(schema.anyOf)) return { keyword: 'anyOf', branches: schemaList(schema.anyOf) }
  if (Array.isArray(schema.oneOf)) return { keyword: 'oneOf', branches: schemaList(schema.oneOf) }
  return undefined
}

export function compareSum(
  walk: Walk,
  out: Out,
  path: string,
  o: Record<string, unknown>,
  n: Record<string, unknown>
): void {
  const a = sumOf(o)
  const b = sumOf(n)
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
    // A value matching several branches passes anyOf but fails oneOf; with one branch both mean the same.
    const single = a.branches.length === 1 && b.branches.length === 1
    if (b.keyword === 'anyOf') {
      add(out, 'COMBINED_CRITERION_EXTENDED', childPath(path, 'anyOf'), true, single, 'oneOf became anyOf')
    } else {
      const message = 'anyOf became oneOf: values matching more than one branch are now rejected'
      add(out, 'COMBINED_CRITERION_NARROWED', childPath(path, 'oneOf'), single, true, message)
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
    if (!r.backward || !r.forward) add(out, 'NOT_SCHEMA_CHANGED', where, r.backward, r.forward, 'not schema changed')
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
