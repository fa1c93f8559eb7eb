import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import { parse } from 'yaml'

/** The part of an OpenAPI v3 schema node (as Kubernetes CRDs use it) that the conversion reads. */
export interface OpenApiSchema {
  type?: string
  properties?: Record<string, OpenApiSchema>
  additionalProperties?: boolean | OpenApiSchema
  items?: OpenApiSchema
  required?: string[]
  enum?: unknown[]
  pattern?: string
  minimum?: number
  maximum?: number
  minItems?: number
  maxItems?: number
  minLength?: number
  maxLength?: number
  nullable?: boolean
  oneOf?: OpenApiSchema[]
  anyOf?: OpenApiSchema[]
  allOf?: OpenApiSchema[]
  not?: OpenApiSchema
  description?: string
  format?: string
  default?: unknown
  'x-kubernetes-int-or-string'?: boolean
  'x-kubernetes-preserve-unknown-fields'?: boolean
  'x-kubernetes-validations'?: { rule: string; message?: string }[]
}

export type JsonSchema = { [key: string]: unknown }

export interface Conversion {
  schema: JsonSchema
  /** CEL rules (x-kubernetes-validations) found: JSON Schema cannot express them, the API server evaluates them. */
  celRules: string[]
}

const COPIED = ['enum', 'pattern', 'minimum', 'maximum', 'minItems', 'maxItems', 'minLength', 'maxLength'] as const

/**
 * A CRD's openAPIV3Schema as a JSON Schema (draft-07) that ajv can run:
 *
 * - `x-kubernetes-int-or-string` becomes `anyOf: [integer, string]`;
 * - an object with `properties` gets `additionalProperties: false` unless it says
 *   `x-kubernetes-preserve-unknown-fields`: the API server would silently prune an unknown field (a typo such as
 *   `operation` for `operations`), and `kubectl apply --validate=strict` rejects it — so do we;
 * - `nullable` becomes a `null` type; `format`, `description` and `default` are dropped (CRDs use Kubernetes formats
 *   ajv does not know; they are not constraints here);
 * - branches of oneOf/anyOf/allOf/not are "value validations" over the structural schema around them: they are
 *   converted without adding types or additionalProperties (their `properties: {x: {}}` only name fields).
 * - `x-kubernetes-validations` (CEL) are collected, not evaluated.
 */
export function crdSchemaToJsonSchema(root: OpenApiSchema): Conversion {
  const celRules: string[] = []
  const convert = (node: OpenApiSchema, structural: boolean): JsonSchema => {
    const out: JsonSchema = {}
    for (const rule of node['x-kubernetes-validations'] ?? []) celRules.push(rule.rule)
    if (node['x-kubernetes-int-or-string']) {
      // Each constraint goes to the branch it applies to (a pattern constrains the string form only), which is also
      // what ajv's strict types want.
      const integer: JsonSchema = { type: 'integer' }
      const string: JsonSchema = { type: 'string' }
      for (const key of COPIED) {
        if (node[key] === undefined) continue
        if (key === 'minimum' || key === 'maximum') integer[key] = node[key]
        else if (key === 'enum') out.enum = node.enum
        else string[key] = node[key]
      }
      out.anyOf = [integer, string]
    } else {
      if (node.type !== undefined) out.type = node.nullable ? [node.type, 'null'] : node.type
      for (const key of COPIED) if (node[key] !== undefined) out[key] = node[key]
    }
    if (node.required !== undefined) out.required = node.required
    if (node.properties !== undefined) {
      out.properties = Object.fromEntries(
        Object.entries(node.properties).map(([name, child]) => [name, convert(child, structural)])
      )
    }
    if (node.items !== undefined) out.items = convert(node.items, structural)
    if (typeof node.additionalProperties === 'object') {
      out.additionalProperties = convert(node.additionalProperties, structural)
    } else if (node.additionalProperties !== undefined) {
      out.additionalProperties = node.additionalProperties
    } else if (structural && node.properties !== undefined && !node['x-kubernetes-preserve-unknown-fields']) {
      out.additionalProperties = false
    }
    for (const key of ['oneOf', 'anyOf', 'allOf'] as const) {
      const branches = node[key]
      if (branches !== undefined) {
        const converted = branches.map((b) => convert(b, false))
        // int-or-string already used anyOf: combine rather than overwrite.
        if (out[key] !== undefined) out.allOf = [{ [key]: out[key] }, { [key]: converted }]
        else out[key] = converted
      }
    }
    if (node.not !== undefined) out.not = convert(node.not, false)
    return out
  }
  return { schema: convert(root, true), celRules }
}

export interface Crd {
  group: string
  kind: string
  version: string
  /** `group/version`, what manifests must say in apiVersion. */
  apiVersion: string
  openApi: OpenApiSchema
  file: string
}

interface CrdDocument {
  kind: string
  spec: {
    group: string
    names: { kind: string }
    versions: { name: string; served: boolean; storage: boolean; schema: { openAPIV3Schema: OpenApiSchema } }[]
  }
}

/** The CRDs of a directory, keyed by kind; only served versions. */
export function loadCrds(dir: string): Map<string, Crd[]> {
  const crds = new Map<string, Crd[]>()
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))) {
    const doc = parse(readFileSync(join(dir, file), 'utf8')) as CrdDocument
    if (doc?.kind !== 'CustomResourceDefinition') continue
    for (const version of doc.spec.versions.filter((v) => v.served)) {
      const kind = doc.spec.names.kind
      const list = crds.get(kind) ?? []
      list.push({
        group: doc.spec.group,
        kind,
        version: version.name,
        apiVersion: `${doc.spec.group}/${version.name}`,
        openApi: version.schema.openAPIV3Schema,
        file
      })
      crds.set(kind, list)
    }
  }
  return crds
}

/** DNS-1123 subdomain: what most Kubernetes object names (and every Strimzi resource name) must be. */
export const DNS1123_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'

/** ObjectMeta as manifests in this repo may write it: strict, so a misspelt key fails. */
export const OBJECT_META_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', pattern: DNS1123_SUBDOMAIN, maxLength: 253 },
    namespace: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63 },
    labels: { type: 'object', additionalProperties: { type: 'string', maxLength: 63 } },
    annotations: { type: 'object', additionalProperties: { type: 'string' } }
  }
}

export interface CrdValidator {
  validate(manifest: unknown): { ok: boolean; errors: string[] }
  celRules: string[]
}

/** A validator for one CRD version: its converted schema, with apiVersion/kind pinned and metadata checked. */
export function crdValidator(crd: Crd): CrdValidator {
  const { schema, celRules } = crdSchemaToJsonSchema(crd.openApi)
  const properties = { ...(schema.properties as Record<string, JsonSchema>) }
  properties.apiVersion = { const: crd.apiVersion }
  properties.kind = { const: crd.kind }
  properties.metadata = OBJECT_META_SCHEMA
  // The status is the operator's to write; a manifest carrying one is a copy of live state, not a desired one. The
  // root object is closed (additionalProperties: false), so dropping the property rejects it.
  delete properties.status
  const full: JsonSchema = {
    ...schema,
    properties,
    required: [...new Set([...((schema.required as string[] | undefined) ?? []), 'apiVersion', 'kind', 'metadata'])]
  }
  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true })
  const compiled: ValidateFunction = ajv.compile(full)
  return {
    celRules,
    validate(manifest) {
      const ok = compiled(manifest)
      return { ok, errors: (compiled.errors ?? []).map(formatError) }
    }
  }
}

function formatError(error: ErrorObject): string {
  const extra =
    error.keyword === 'additionalProperties'
      ? ` (${(error.params as { additionalProperty: string }).additionalProperty})`
      : error.keyword === 'required'
        ? ` (${(error.params as { missingProperty: string }).missingProperty})`
        : ''
  return `${error.instancePath || '/'} ${error.message ?? error.keyword}${extra}`
}
