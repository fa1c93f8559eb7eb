import { existsSync, readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { resolve } from 'node:path'
import { Ajv, type ValidateFunction } from 'ajv'
import addFormats from 'ajv-formats'
import { REFERENCE_DIR } from './reference.ts'
import { cosine } from './vectors.ts'

/**
 * A stand-in Qdrant for contract tests: no Qdrant server can run on these machines, so the Qdrant sink is tested
 * against Qdrant's published OpenAPI spec instead. Every request is matched to its operation by method and path
 * template, its query parameters and JSON body are validated against the operation's schemas (ajv, with the
 * spec's OpenAPI 3.0 `nullable` turned into JSON Schema), and every answer is validated against the operation's
 * 200 response schema before it is sent. Anything off is recorded in `violations` and answered 400, so a test
 * asserts `violations` is empty. State is kept (collections, points, payload indexes) so searches and the fence
 * filters behave; only what the sink uses is implemented, the rest is a recorded violation.
 */
export const QDRANT_SPEC_PATH = resolve(REFERENCE_DIR, 'qdrant/openapi-v1.19.json')

export function qdrantSpecAvailable(): boolean {
  return existsSync(QDRANT_SPEC_PATH)
}

export const NO_QDRANT_SPEC = `${QDRANT_SPEC_PATH} is absent (a clone outside this workplace): the Qdrant contract tests need Qdrant's OpenAPI spec`

type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
type JsonObject = { [key: string]: Json }

interface Operation {
  readonly id: string
  readonly method: string
  readonly template: string
  readonly pattern: RegExp
  readonly params: readonly string[]
  readonly query: ReadonlyMap<string, ValidateFunction>
  readonly body: ValidateFunction | undefined
  readonly response: ValidateFunction | undefined
}

export interface RecordedRequest {
  readonly operation: string
  readonly method: string
  readonly path: string
  readonly query: Record<string, string>
  readonly body: unknown
}

interface Point {
  vector: number[]
  payload: JsonObject
}

interface Collection {
  size: number
  distance: string
  points: Map<string, Point>
  payloadSchema: Map<string, string>
}

/** OpenAPI 3.0's `nullable` as JSON Schema: `{nullable: true}` alone is null; with `type`, null joins the types. */
function convert(node: Json, specId: string): Json {
  if (Array.isArray(node)) return node.map((n) => convert(n, specId))
  if (node === null || typeof node !== 'object') return node
  const out: JsonObject = {}
  for (const [key, value] of Object.entries(node)) {
    if (key === '$ref' && typeof value === 'string' && value.startsWith('#/')) out[key] = `${specId}${value}`
    else if (key === 'example' || key === 'nullable') continue
    else out[key] = convert(value, specId)
  }
  if (node.nullable !== true) return out
  if (typeof out.type === 'string') {
    out.type = [out.type, 'null']
    if (Array.isArray(out.enum)) out.enum = [...out.enum, null]
    return out
  }
  const rest = Object.keys(out).filter((k) => k !== 'description' && k !== 'default')
  if (rest.length === 0) return { type: 'null' }
  return { anyOf: [out, { type: 'null' }] }
}

const INTEGER_FORMATS: Record<string, [number, number]> = {
  uint: [0, Number.MAX_SAFE_INTEGER],
  uint64: [0, Number.MAX_SAFE_INTEGER],
  uint32: [0, 2 ** 32 - 1],
  uint16: [0, 2 ** 16 - 1],
  uint8: [0, 255],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  int32: [-(2 ** 31), 2 ** 31 - 1]
}

function buildOperations(): Operation[] {
  const spec = JSON.parse(readFileSync(QDRANT_SPEC_PATH, 'utf8')) as JsonObject
  const specId = 'qdrant-openapi.json'
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true })
  addFormats.default(ajv)
  for (const [name, [min, max]] of Object.entries(INTEGER_FORMATS)) {
    ajv.addFormat(name, { type: 'number', validate: (x: number) => Number.isInteger(x) && x >= min && x <= max })
  }
  ajv.addFormat('float', { type: 'number', validate: (x: number) => Number.isFinite(x) })
  ajv.addFormat('double', { type: 'number', validate: (x: number) => Number.isFinite(x) })
  ajv.addFormat('partial-date-time', true)
  ajv.addSchema({ $id: specId, components: convert(spec.components as Json, specId) } as object)
  const compile = (schema: Json | undefined): ValidateFunction | undefined =>
    schema === undefined ? undefined : ajv.compile(convert(schema, specId) as object)

  const operations: Operation[] = []
  for (const [template, methods] of Object.entries(spec.paths as Record<string, JsonObject>)) {
    const params: string[] = []
    const pattern = new RegExp(
      `^${template.replace(/\{([^}]+)\}/g, (_m, name: string) => {
        params.push(name)
        return '([^/]+)'
      })}$`
    )
    for (const [method, raw] of Object.entries(methods)) {
      const op = raw as JsonObject
      const query = new Map<string, ValidateFunction>()
      for (const p of (op.parameters ?? []) as JsonObject[]) {
        if (p.in === 'query') query.set(p.name as string, compile(p.schema)!)
      }
      const body = (op.requestBody as JsonObject | undefined)?.content as JsonObject | undefined
      const ok = ((op.responses as JsonObject)['200'] as JsonObject | undefined)?.content as JsonObject | undefined
      operations.push({
        id: op.operationId as string,
        method: method.toUpperCase(),
        template,
        pattern,
        params,
        query,
        body: compile((body?.['application/json'] as JsonObject | undefined)?.schema),
        response: compile((ok?.['application/json'] as JsonObject | undefined)?.schema)
      })
    }
  }
  return operations
}

let cachedOperations: Operation[] | undefined

class Unsupported extends Error {}

export class QdrantSpecServer {
  readonly requests: RecordedRequest[] = []
  readonly violations: string[] = []
  readonly collections = new Map<string, Collection>()
  /** Alias name → collection name; collection operations resolve an alias as Qdrant does. */
  readonly aliases = new Map<string, string>()
  /** Answer every request with this status (simulates an outage); undefined = serve normally. */
  failWith: number | undefined
  #server: Server | undefined
  #operations: Operation[]
  #sockets = new Set<import('node:net').Socket>()
  #operationId = 0

  constructor() {
    cachedOperations ??= buildOperations()
    this.#operations = cachedOperations
  }

  get url(): string {
    const address = this.#server?.address() as AddressInfo | undefined
    if (!address) throw new Error('not listening')
    return `http://127.0.0.1:${address.port}`
  }

  /** Requests by operation id, in order. */
  operations(): string[] {
    return this.requests.map((r) => r.operation)
  }

  async listen(port = 0): Promise<this> {
    const server = createServer((req, res) => {
      this.#handle(req, res).catch((error: unknown) => {
        this.violations.push(`internal: ${String(error)}`)
        if (!res.headersSent) this.#send(res, 500, { status: { error: String(error) }, time: 0 })
      })
    })
    server.on('connection', (socket) => {
      this.#sockets.add(socket)
      socket.on('close', () => this.#sockets.delete(socket))
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => resolve())
    })
    this.#server = server
    return this
  }

  async close(): Promise<void> {
    const server = this.#server
    this.#server = undefined
    if (!server) return
    for (const socket of this.#sockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const text = Buffer.concat(chunks).toString('utf8')
    if (this.failWith !== undefined) {
      this.#send(res, this.failWith, { status: { error: 'simulated outage' }, time: 0 })
      return
    }
    const method = req.method ?? 'GET'
    let op: Operation | undefined
    let match: RegExpExecArray | null = null
    for (const candidate of this.#operations) {
      if (candidate.method !== method) continue
      match = candidate.pattern.exec(url.pathname)
      if (match) {
        op = candidate
        break
      }
    }
    if (!op || !match) {
      this.#reject(res, `${method} ${url.pathname}: no such operation in the spec`)
      return
    }
    const params: Record<string, string> = {}
    op.params.forEach((name, i) => {
      params[name] = decodeURIComponent(match[i + 1]!)
    })
    const query: Record<string, string> = {}
    for (const [key, value] of url.searchParams) {
      query[key] = value
      const validate = op.query.get(key)
      if (!validate) {
        this.#reject(res, `${op.id}: unknown query parameter ${key}`)
        return
      }
      const typed = value === 'true' ? true : value === 'false' ? false : /^\d+$/.test(value) ? Number(value) : value
      if (!validate(typed)) {
        this.#reject(res, `${op.id}: query ${key}=${value}: ${JSON.stringify(validate.errors)}`)
        return
      }
    }
    let body: unknown
    if (text.length > 0) {
      try {
        body = JSON.parse(text)
      } catch {
        this.#reject(res, `${op.id}: body is not JSON`)
        return
      }
    }
    if (op.body) {
      if (body === undefined) {
        this.#reject(res, `${op.id}: body required`)
        return
      }
      if (!op.body(body)) {
        this.#reject(res, `${op.id}: body invalid: ${JSON.stringify(op.body.errors?.slice(0, 5))}`)
        return
      }
    } else if (body !== undefined) {
      this.#reject(res, `${op.id}: takes no body`)
      return
    }
    this.requests.push({ operation: op.id, method, path: url.pathname, query, body })
    let result: { status: number; result: Json }
    try {
      result = this.#execute(op.id, params, query, body as JsonObject)
    } catch (error) {
      if (error instanceof Unsupported) {
        this.#reject(res, `${op.id}: ${error.message}`)
        return
      }
      throw error
    }
    const response = { time: 0.001, status: 'ok', result: result.result }
    if (result.status === 200 && op.response && !op.response(response)) {
      this.violations.push(`${op.id}: our response breaks the spec: ${JSON.stringify(op.response.errors?.slice(0, 3))}`)
    }
    if (result.status === 200) this.#send(res, 200, response)
    else this.#send(res, result.status, { status: { error: String(result.result) }, time: 0.001 })
  }

  #reject(res: ServerResponse, violation: string): void {
    this.violations.push(violation)
    this.#send(res, 400, { status: { error: violation }, time: 0 })
  }

  #send(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body)
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
    res.end(text)
  }

  #collection(name: string | undefined): Collection {
    const c = this.collections.get(this.aliases.get(name ?? '') ?? name ?? '')
    if (!c) throw new NotFound(`Collection \`${name}\` doesn't exist!`)
    return c
  }

  #execute(
    operation: string,
    params: Record<string, string>,
    query: Record<string, string>,
    body: JsonObject
  ): { status: number; result: Json } {
    const ok = (result: Json) => ({ status: 200, result })
    const updated = () => {
      if (query.wait !== 'true') throw new Unsupported('the sink must write with wait=true')
      return ok({ operation_id: this.#operationId++, status: 'completed' })
    }
    try {
      switch (operation) {
        case 'root':
          return ok({ title: 'qdrant - vector search engine', version: '1.19.0' } as JsonObject)
        case 'collection_exists': {
          const name = params.collection_name!
          return ok({ exists: this.collections.has(this.aliases.get(name) ?? name) })
        }
        case 'create_collection': {
          const name = params.collection_name!
          if (this.collections.has(name) || this.aliases.has(name)) return { status: 409, result: 'already exists' }
          const vectors = body.vectors as JsonObject
          if (typeof vectors?.size !== 'number') throw new Unsupported('only an unnamed vector is implemented')
          this.collections.set(params.collection_name!, {
            size: vectors.size,
            distance: vectors.distance as string,
            points: new Map(),
            payloadSchema: new Map()
          })
          return ok(true)
        }
        case 'get_collection':
          return ok(this.#info(this.#collection(params.collection_name)))
        case 'delete_collection':
          return ok(this.collections.delete(params.collection_name!))
        case 'create_field_index': {
          const c = this.#collection(params.collection_name)
          c.payloadSchema.set(body.field_name as string, String(body.field_schema))
          return updated()
        }
        case 'upsert_points': {
          const c = this.#collection(params.collection_name)
          if (!Array.isArray(body.points)) throw new Unsupported('only the points-list form is implemented')
          const filter = body.update_filter as JsonObject | undefined
          // upsert (default): insert or update; update_only: never insert; insert_only: never update.
          const mode = (body.update_mode as string | null | undefined) ?? 'upsert'
          for (const p of body.points as JsonObject[]) {
            const id = String(p.id)
            const vector = p.vector as number[]
            if (!Array.isArray(vector) || vector.length !== c.size) {
              return { status: 400, result: `Wrong input: Vector dimension error: expected dim: ${c.size}` }
            }
            const existing = c.points.get(id)
            if (existing ? mode === 'insert_only' : mode === 'update_only') continue
            if (existing && filter && !this.#matches(filter, id, existing)) continue
            c.points.set(id, { vector, payload: (p.payload ?? {}) as JsonObject })
          }
          return updated()
        }
        case 'delete_points': {
          const c = this.#collection(params.collection_name)
          if (Array.isArray(body.points)) for (const id of body.points) c.points.delete(String(id))
          else {
            for (const [id, point] of c.points)
              if (this.#matches(body.filter as JsonObject, id, point)) c.points.delete(id)
          }
          return updated()
        }
        case 'get_points': {
          const c = this.#collection(params.collection_name)
          const include = (body.with_payload as JsonObject | undefined)?.include as string[] | undefined
          const out: Json[] = []
          for (const id of body.ids as Json[]) {
            const p = c.points.get(String(id))
            if (!p) continue
            const payload = include
              ? Object.fromEntries(Object.entries(p.payload).filter(([k]) => include.includes(k)))
              : p.payload
            out.push({ id: String(id), payload })
          }
          return ok(out)
        }
        case 'query_points': {
          const c = this.#collection(params.collection_name)
          const vector = body.query as number[]
          if (!Array.isArray(vector)) throw new Unsupported('only a dense query vector is implemented')
          const hits: Array<{ id: string; score: number; payload: JsonObject }> = []
          for (const [id, p] of c.points) {
            if (body.filter && !this.#matches(body.filter as JsonObject, id, p)) continue
            hits.push({ id, score: cosine(vector, p.vector), payload: p.payload })
          }
          hits.sort((a, b) => b.score - a.score)
          const limit = typeof body.limit === 'number' ? body.limit : 10
          return ok({ points: hits.slice(0, limit).map((h) => ({ ...h, version: 1 })) })
        }
        case 'get_collections_aliases':
          return ok({
            aliases: [...this.aliases].map(([alias, collection]) => ({
              alias_name: alias,
              collection_name: collection
            }))
          })
        case 'get_collection_aliases': {
          const name = params.collection_name!
          return ok({
            aliases: [...this.aliases]
              .filter(([, collection]) => collection === name)
              .map(([alias, collection]) => ({ alias_name: alias, collection_name: collection }))
          })
        }
        case 'update_aliases': {
          // All actions or none, as Qdrant applies them.
          const next = new Map(this.aliases)
          for (const action of body.actions as JsonObject[]) {
            const create = action.create_alias as JsonObject | undefined
            const remove = action.delete_alias as JsonObject | undefined
            if (create) {
              const alias = create.alias_name as string
              const collection = create.collection_name as string
              if (!this.collections.has(collection))
                return { status: 404, result: `Collection \`${collection}\` doesn't exist!` }
              if (next.has(alias) || this.collections.has(alias)) {
                return { status: 400, result: `Wrong input: alias or collection ${alias} already exists` }
              }
              next.set(alias, collection)
            } else if (remove) {
              if (!next.delete(remove.alias_name as string)) {
                return { status: 404, result: `Alias ${String(remove.alias_name)} does not exist` }
              }
            } else throw new Unsupported('only create_alias and delete_alias are implemented')
          }
          this.aliases.clear()
          for (const [alias, collection] of next) this.aliases.set(alias, collection)
          return ok(true)
        }
        case 'count_points':
          return ok({ count: this.#collection(params.collection_name).points.size })
        default:
          throw new Unsupported('operation not implemented by the test server')
      }
    } catch (error) {
      if (error instanceof NotFound) return { status: 404, result: error.message }
      throw error
    }
  }

  #info(c: Collection): Json {
    return {
      status: 'green',
      optimizer_status: 'ok',
      segments_count: 1,
      points_count: c.points.size,
      indexed_vectors_count: 0,
      config: {
        params: { vectors: { size: c.size, distance: c.distance }, shard_number: 1, replication_factor: 1 },
        hnsw_config: { m: 16, ef_construct: 100, full_scan_threshold: 10000 },
        optimizer_config: { default_segment_number: 0, flush_interval_sec: 5 },
        wal_config: { wal_capacity_mb: 32, wal_segments_ahead: 0 }
      },
      payload_schema: Object.fromEntries(
        [...c.payloadSchema].map(([field, type]) => [field, { data_type: type, points: c.points.size }])
      )
    }
  }

  /** Qdrant filter semantics for the conditions the sink sends: must, should, must_not, has_id, match, range. */
  #matches(filter: JsonObject, id: string, point: Point): boolean {
    const list = (x: Json | undefined): JsonObject[] =>
      x === undefined || x === null ? [] : Array.isArray(x) ? (x as JsonObject[]) : [x as JsonObject]
    const must = list(filter.must)
    const should = list(filter.should)
    const mustNot = list(filter.must_not)
    if (filter.min_should !== undefined && filter.min_should !== null) throw new Unsupported('min_should')
    if (!must.every((c) => this.#condition(c, id, point))) return false
    if (should.length > 0 && !should.some((c) => this.#condition(c, id, point))) return false
    return !mustNot.some((c) => this.#condition(c, id, point))
  }

  #condition(c: JsonObject, id: string, point: Point): boolean {
    if ('must' in c || 'should' in c || 'must_not' in c) return this.#matches(c, id, point)
    if (Array.isArray(c.has_id)) return c.has_id.map(String).includes(id)
    if (typeof c.key === 'string') {
      const value = point.payload[c.key]
      const match = c.match as JsonObject | undefined
      const range = c.range as Record<string, number | null> | undefined
      if (match && 'value' in match) return value === match.value
      if (range) {
        if (typeof value !== 'number') return false
        if (range.lt != null && !(value < range.lt)) return false
        if (range.lte != null && !(value <= range.lte)) return false
        if (range.gt != null && !(value > range.gt)) return false
        if (range.gte != null && !(value >= range.gte)) return false
        return true
      }
    }
    throw new Unsupported(`condition not implemented: ${JSON.stringify(c).slice(0, 100)}`)
  }
}

class NotFound extends Error {}
