import { add, addVerdict, compare, type Out, probe, type Walk } from './diff.ts'
import { childPath, isSchemaNode } from './json.ts'
import { compareOptional, compareRest, restOf, schemaList } from './objects.ts'
import { compareCount } from './scalars.ts'

/** Array keywords: items and tuples (2020-12 prefixItems or draft-07 items arrays), counts, contains. */

function tuple(schema: Record<string, unknown>) {
  if (Array.isArray(schema.items)) {
    return {
      prefix: schemaList(schema.items),
      prefixKw: 'items',
      rest: schema.additionalItems,
      restKw: 'additionalItems'
    }
  }
  return { prefix: schemaList(schema.prefixItems), prefixKw: 'prefixItems', rest: schema.items, restKw: 'items' }
}

export function compareArray(
  walk: Walk,
  out: Out,
  path: string,
  o: Record<string, unknown>,
  n: Record<string, unknown>
): void {
  const a = tuple(o)
  const b = tuple(n)
  for (let i = 0; i < Math.max(a.prefix.length, b.prefix.length); i++) {
    const before = a.prefix[i]
    const after = b.prefix[i]
    const where = childPath(path, after === undefined ? a.prefixKw : b.prefixKw, i)
    if (before !== undefined && after !== undefined) compare(walk, out, where, before, after)
    else if (after !== undefined) {
      const r = probe(walk, restOf(a.rest), after)
      addVerdict(out, 'TUPLE_ITEM_ADDED', where, r, `tuple position ${i} added`)
    } else if (before !== undefined) {
      const r = probe(walk, before, restOf(b.rest))
      addVerdict(out, 'TUPLE_ITEM_REMOVED', where, r, `tuple position ${i} removed`)
    }
  }
  const restName = b.prefix.length > 0 || a.prefix.length > 0 ? 'ADDITIONAL_ITEMS' : 'ITEMS'
  compareRest(walk, out, path, b.restKw, restName, a.rest, { [b.restKw]: b.rest })
  compareCount(out, path, 'minItems', 'min', o, n)
  compareCount(out, path, 'maxItems', 'max', o, n)
  compareCount(out, path, 'minContains', 'min', o, n)
  compareCount(out, path, 'maxContains', 'max', o, n)
  if ((o.uniqueItems === true) !== (n.uniqueItems === true)) {
    const where = childPath(path, 'uniqueItems')
    if (n.uniqueItems === true) add(out, 'UNIQUE_ITEMS_ADDED', where, false, true, 'items must now be unique')
    else add(out, 'UNIQUE_ITEMS_REMOVED', where, true, false, 'items may now repeat: old readers reject repeats')
  }
  const oc = isSchemaNode(o.contains) ? o.contains : undefined
  const nc = isSchemaNode(n.contains) ? n.contains : undefined
  if (oc !== undefined && nc !== undefined) compare(walk, out, childPath(path, 'contains'), oc, nc)
  else if (nc !== undefined) add(out, 'CONTAINS_ADDED', childPath(path, 'contains'), false, true, 'contains added')
  else if (oc !== undefined) add(out, 'CONTAINS_REMOVED', childPath(path, 'contains'), true, false, 'contains removed')
  compareOptional(walk, out, path, 'unevaluatedItems', o.unevaluatedItems, n.unevaluatedItems)
}
