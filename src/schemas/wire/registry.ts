import { ConfluentSchemaRegistry } from '@platformatic/kafka'
import type { ValidateFunction } from 'ajv'
import { fullFormats } from 'ajv-formats/dist/formats.js'
import { ErrorCodes, FatalError, PoisonError, RetriableError } from '../../errors.ts'
import { redact } from '../../logger.ts'
import { isObject } from '../compat/json.ts'
import { fastFormatDefinitions } from '../formats.ts'
import { confluentRegistry } from '../registry/confluent.ts'
import { isNotFound, requestJson } from '../registry/http.ts'

export interface WireRegistryOptions {
  /** The Confluent-compatible API (`SCHEMA_REGISTRY_URL`, e.g. Apicurio's `…/apis/ccompat/v7`). */
  url: string
  /** Sent as the Authorization header (never logged). */
  authorization?: string
  timeoutMs?: number
  /** Retries of one fetch by @platformatic/kafka before the caller's own backoff takes over. */
  retries?: number
}

export const defaultWireRegistryOptions = {
  timeoutMs: 5_000,
  retries: 2
} satisfies Partial<WireRegistryOptions>

/**
 * Schemas by id for the Confluent wire format, cached and compiled once. Fetching and compiling by id is
 * @platformatic/kafka's ConfluentSchemaRegistry (it picks ajv by `$schema` and dedupes concurrent fetches); it is
 * given ajv-formats' formats so that `format` is asserted exactly as `validate()` does with ajv-formats, with the
 * same faster `date-time` and `uuid` (every framed record is validated here; see src/schemas/formats.ts).
 */
export class WireRegistry {
  readonly url: string
  readonly #registry: ConfluentSchemaRegistry
  readonly #options: WireRegistryOptions & typeof defaultWireRegistryOptions
  readonly #unknown = new Set<number>()

  constructor(options: WireRegistryOptions) {
    const resolved = { ...defaultWireRegistryOptions, ...options }
    if (typeof resolved.url !== 'string' || !/^https?:\/\//.test(resolved.url)) {
      throw new FatalError(`registry url must be an http(s) URL, got ${redact(String(resolved.url))}`, {
        code: ErrorCodes.CONFIG
      })
    }
    this.url = resolved.url.replace(/\/+$/, '')
    this.#options = resolved
    this.#registry = new ConfluentSchemaRegistry({
      url: this.url,
      timeout: resolved.timeoutMs,
      retries: resolved.retries,
      retryDelay: 200,
      ...(resolved.authorization ? { headers: { authorization: resolved.authorization } } : {}),
      // First error only, as validate(): @platformatic/kafka defaults to allErrors, one object per failing item.
      jsonAjvOptions: { allErrors: false, allowUnionTypes: true, formats: { ...fullFormats, ...fastFormatDefinitions } }
    })
  }

  /** The compiled validator of a schema id already loaded. */
  cached(schemaId: number): ValidateFunction | undefined {
    const schema = this.#registry.get(schemaId)
    return schema?.type === 'json' ? (schema.schema as ValidateFunction) : undefined
  }

  /**
   * Loads a schema by id. An id the registry does not know, a schema that is not JSON Schema or does not compile
   * is poison for the record carrying it; anything else (registry down, timeouts) is retriable.
   */
  async load(schemaId: number): Promise<ValidateFunction> {
    const hit = this.cached(schemaId)
    if (hit) return hit
    if (this.#unknown.has(schemaId)) throw unknownId(schemaId)
    try {
      await new Promise<void>((resolve, reject) => {
        void this.#registry.fetchSchema(schemaId, (error) => (error ? reject(error) : resolve()))
      })
    } catch (error) {
      if (isMissing(error)) {
        this.#unknown.add(schemaId)
        throw unknownId(schemaId)
      }
      if (/compile|schema is invalid|strict mode|unknown format/i.test(String((error as Error)?.message))) {
        throw new PoisonError(`schema id ${schemaId} does not compile: ${(error as Error).message}`, {
          code: ErrorCodes.VALIDATION,
          cause: error
        })
      }
      throw new RetriableError(`schema registry ${redact(this.url)}: cannot fetch schema id ${schemaId}`, {
        cause: error
      })
    }
    const loaded = this.cached(schemaId)
    if (!loaded) {
      throw new PoisonError(`schema id ${schemaId} is not a JSON Schema`, { code: ErrorCodes.VALIDATION })
    }
    return loaded
  }

  /**
   * The id producers frame with: the id under which `schema` is registered for `subject` (looked up by content,
   * never registered here: registration is `npm run schemas -- register`), or the subject's latest version.
   */
  async schemaIdFor(subject: string, schema?: object): Promise<number> {
    const headers: Record<string, string> = {}
    if (this.#options.authorization) headers.authorization = this.#options.authorization
    const http = { timeoutMs: this.#options.timeoutMs, headers }
    if (schema !== undefined) {
      const found = await confluentRegistry(this.url, http).lookup(subject, 0, JSON.stringify(schema))
      if (found.state !== 'same' || found.id === undefined) {
        throw new FatalError(
          `schema ${(schema as { $id?: string }).$id ?? ''} is not registered under subject ${subject} at ${redact(this.url)}: run \`npm run schemas -- register\``,
          { code: ErrorCodes.CONFIG }
        )
      }
      return found.id
    }
    try {
      const { body } = await requestJson(
        'GET',
        `${this.url}/subjects/${encodeURIComponent(subject)}/versions/latest`,
        undefined,
        http
      )
      if (isObject(body) && typeof body.id === 'number') return body.id
      throw new FatalError(`unexpected answer for ${subject}'s latest version: ${JSON.stringify(body)}`)
    } catch (error) {
      if (isNotFound(error)) {
        throw new FatalError(
          `subject ${subject} is not registered at ${redact(this.url)}: run \`npm run schemas -- register\``,
          {
            code: ErrorCodes.CONFIG
          }
        )
      }
      throw error
    }
  }
}

function unknownId(schemaId: number): PoisonError {
  return new PoisonError(`schema id ${schemaId} is unknown to the schema registry`, { code: ErrorCodes.VALIDATION })
}

/** 404 from GET /schemas/ids/{id}, possibly wrapped in the client's MultipleErrors. */
function isMissing(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false
  const e = error as { message?: unknown; errors?: unknown[]; response?: unknown }
  if (typeof e.message === 'string' && /\[HTTP 404\]/.test(e.message)) return true
  return Array.isArray(e.errors) && e.errors.some(isMissing)
}

const shared = new Map<string, WireRegistry>()

/** One WireRegistry (one cache) per URL in a process, so sources and sinks share compiled schemas. */
export function wireRegistry(options: WireRegistryOptions | WireRegistry): WireRegistry {
  if (options instanceof WireRegistry) return options
  const key = `${options.url}|${options.authorization ?? ''}`
  let registry = shared.get(key)
  if (!registry) {
    registry = new WireRegistry(options)
    shared.set(key, registry)
  }
  return registry
}
