import { isAnnotationKeyword, isObject, isSchemaNode, type SchemaNode, unescapePointer } from './json.ts'

/**
 * `$ref` resolution inside one schema document, the way validators do it: each `$ref` is a URI resolved against the
 * base URI of the schema resource it sits in (the nearest enclosing `$id`, draft-04 `id`), and then either a JSON
 * Pointer fragment (`#/$defs/a`), a plain-name fragment (`#Address`: draft-06/07 `"$id": "#Address"`, 2019-09 and
 * 2020-12 `$anchor` / `$dynamicAnchor`) or no fragment (the resource itself). Both fragment kinds name the same node
 * a validator would use, so comparing through either is the same as comparing the definition inlined.
 */

/** The base URI of a document without `$id`: any absolute URI that no real schema uses. */
const DOCUMENT_BASE = 'https://schema.invalid/document.json'
const MAX_REF_HOPS = 32

interface DocumentIndex {
  readonly root: SchemaNode
  readonly rootUri: string
  /** The base URI in effect at each object node of the document. */
  readonly baseOf: WeakMap<object, string>
  /** Embedded schema resources (`$id` with a path) by absolute URI without fragment. */
  readonly resources: Map<string, SchemaNode>
  /** Plain-name fragments by `resource-uri#name`; `null` when the name is defined twice (ambiguous). */
  readonly anchors: Map<string, SchemaNode | null>
  /**
   * `$ref` with siblings → `{ …siblings, allOf: [target] }`, made once per node. Per document: callers may share a
   * node between the old and the new schema, where its `$ref` names different targets.
   */
  readonly merged: WeakMap<object, SchemaNode>
}

const indexes = new WeakMap<object, DocumentIndex>()

/**
 * Nodes made by the checker from a document's node (a `$ref` with siblings as `allOf`, a schema without its
 * combinators): they sit where their origin sits, so their `$ref`s resolve against the origin's base URI.
 */
const origins = new WeakMap<object, object>()

export function deriveNode<T extends object>(origin: object, derived: T): T {
  origins.set(derived, origin)
  return derived
}

/** Draft-03/04 spell the identifier `id`; later drafts `$id` (where `id` is an unknown keyword, an annotation). */
function idKeyword(root: SchemaNode): '$id' | 'id' {
  return isObject(root) && typeof root.$schema === 'string' && /draft-0[34]\b/.test(root.$schema) ? 'id' : '$id'
}

function withoutFragment(url: URL): string {
  const copy = new URL(url.href)
  copy.hash = ''
  return copy.href
}

function parseUri(reference: string, base: string): URL | undefined {
  try {
    return new URL(reference, base)
  } catch {
    return undefined
  }
}

function fragmentOf(url: URL): string | undefined {
  try {
    return decodeURIComponent(url.hash.slice(1))
  } catch {
    return undefined
  }
}

function indexOf(root: SchemaNode): DocumentIndex {
  const key = isObject(root) ? root : undefined
  const cached = key === undefined ? undefined : indexes.get(key)
  if (cached !== undefined) return cached
  const idKey = idKeyword(root)
  const rootId = isObject(root) && typeof root[idKey] === 'string' ? parseUri(root[idKey], DOCUMENT_BASE) : undefined
  const rootUri = rootId === undefined ? DOCUMENT_BASE : withoutFragment(rootId)
  const index: DocumentIndex = {
    root,
    rootUri,
    baseOf: new WeakMap(),
    resources: new Map(),
    anchors: new Map(),
    merged: new WeakMap()
  }
  const anchor = (uri: string, node: SchemaNode) => {
    index.anchors.set(uri, index.anchors.has(uri) ? null : node)
  }
  const visit = (value: unknown, base: string, isSchema: boolean, depth: number): void => {
    if (depth > 256) return
    if (Array.isArray(value)) {
      for (const item of value) visit(item, base, isSchema, depth + 1)
      return
    }
    if (!isObject(value)) return
    let here = base
    if (isSchema) {
      const id = value[idKey]
      const url = typeof id === 'string' ? parseUri(id, base) : undefined
      if (url !== undefined) {
        const uri = withoutFragment(url)
        if (uri !== base) {
          here = uri
          if (value !== root) index.resources.set(uri, value)
        }
        // draft-06/07 plain-name fragment: `"$id": "#Address"` (or `item.json#Address`).
        const name = fragmentOf(url)
        if (name !== undefined && name !== '' && !name.startsWith('/')) anchor(`${uri}#${name}`, value)
      }
      for (const keyword of ['$anchor', '$dynamicAnchor']) {
        const name = value[keyword]
        if (typeof name === 'string' && name !== '') anchor(`${here}#${name}`, value)
      }
      index.baseOf.set(value, here)
    }
    // The values of a name → schema map are schemas; inside a schema, `enum`/`const` and annotations (`default`,
    // `examples`, `x-…`) hold data, where an `$id` identifies nothing.
    for (const [keyword, child] of Object.entries(value)) {
      if (!isSchema) visit(child, here, true, depth + 1)
      else if (MAPS.has(keyword)) visit(child, here, false, depth + 1)
      else if (!DATA.has(keyword) && !isAnnotationKeyword(keyword)) visit(child, here, true, depth + 1)
    }
  }
  visit(root, rootUri, true, 0)
  if (key !== undefined) indexes.set(key, index)
  return index
}

const DATA = new Set(['enum', 'const'])

/** Keywords whose value is an object of name → schema (the object itself is not a schema). */
const MAPS = new Set(['$defs', 'definitions', 'properties', 'patternProperties', 'dependentSchemas', 'dependencies'])

function baseOf(index: DocumentIndex, node: object): string {
  let current: object | undefined = node
  for (let hop = 0; current !== undefined && hop < 8; hop++) {
    const base = index.baseOf.get(current)
    if (base !== undefined) return base
    current = origins.get(current)
  }
  return index.rootUri
}

export type Lookup =
  | { readonly found: SchemaNode }
  /** `external`: the reference names another document, which the checker does not have. */
  | { readonly missing: string; readonly external: boolean }

/** The node `ref` (written in `from`) names in the document `root`. */
export function lookup(root: SchemaNode, from: object, ref: string): Lookup {
  const index = indexOf(root)
  const url = parseUri(ref, baseOf(index, from))
  if (url === undefined) return { missing: ref, external: false }
  const uri = withoutFragment(url)
  const resource = uri === index.rootUri ? root : index.resources.get(uri)
  if (resource === undefined) return { missing: ref, external: true }
  const fragment = fragmentOf(url)
  if (fragment === undefined) return { missing: ref, external: false }
  if (fragment === '') return { found: resource }
  if (!fragment.startsWith('/')) {
    const target = index.anchors.get(`${uri}#${fragment}`)
    return target === undefined || target === null ? { missing: ref, external: false } : { found: target }
  }
  let node: unknown = resource
  for (const token of fragment.slice(1).split('/').map(unescapePointer)) {
    if (Array.isArray(node)) node = node[Number(token)]
    else if (isObject(node) && Object.hasOwn(node, token)) node = node[token]
    else return { missing: ref, external: false }
  }
  return isSchemaNode(node) ? { found: node } : { missing: ref, external: false }
}

export type Resolution = { readonly node: SchemaNode } | { readonly missing: string; readonly external: boolean }

/**
 * Follows `$ref`s from `node`; a `$ref` with sibling assertions becomes `allOf: [target]` next to them (2020-12
 * semantics).
 */
export function resolveRef(root: SchemaNode, node: SchemaNode): Resolution {
  let current = node
  for (let hop = 0; hop < MAX_REF_HOPS; hop++) {
    if (!isObject(current) || typeof current.$ref !== 'string') return { node: current }
    const target = lookup(root, current, current.$ref)
    if (!('found' in target)) return target
    const { $ref: _ref, ...rest } = current
    if (Object.keys(rest).every(isAnnotationKeyword)) {
      current = target.found
      continue
    }
    const cache = indexOf(root).merged
    let merged = cache.get(current)
    if (merged === undefined) {
      const allOf = Array.isArray(rest.allOf) ? [...rest.allOf, target.found] : [target.found]
      merged = deriveNode(current, { ...rest, allOf })
      cache.set(current, merged)
    }
    return { node: merged }
  }
  return { missing: `more than ${MAX_REF_HOPS} chained $refs`, external: false }
}

/** The node `node` stands for after its `$ref`s, or undefined when one cannot be followed. */
export function resolve(root: SchemaNode, node: SchemaNode): SchemaNode | undefined {
  const r = resolveRef(root, node)
  return 'node' in r ? r.node : undefined
}
