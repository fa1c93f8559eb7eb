import { FatalError } from '../../errors.ts'
import { type Compatibility, isCompatibility } from '../../schemas.ts'
import { isObject, jsonEqual } from '../compat/json.ts'
import type { RegistryClient, RegistryVerdict, VersionLookup } from './client.ts'
import { type HttpOptions, isNotFound, requestJson } from './http.ts'

const CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json'

/**
 * The Confluent Schema Registry REST API (also served by Karapace and by Apicurio at `/apis/ccompat/v7`). The registry
 * numbers versions itself, so a local version is found by its content (`POST /subjects/{subject}`), not its number.
 */
export function confluentRegistry(baseUrl: string, options: HttpOptions): RegistryClient {
  const base = baseUrl.replace(/\/+$/, '')
  const subjectUrl = (subject: string) => `${base}/subjects/${encodeURIComponent(subject)}`
  const call = (method: string, url: string, body?: unknown) =>
    requestJson(method, url, body, { ...options, contentType: CONTENT_TYPE })
  const payload = (schema: string) => ({ schema, schemaType: 'JSON' })

  return {
    api: 'confluent',
    url: base,
    async lookup(subject, _version, schema): Promise<VersionLookup> {
      try {
        const { body } = await call('POST', subjectUrl(subject), payload(schema))
        const found = isObject(body) ? body : {}
        return {
          state: 'same',
          registryVersion: String(found.version),
          ...(typeof found.id === 'number' ? { id: found.id } : {})
        }
      } catch (error) {
        if (isNotFound(error)) return { state: 'missing' }
        throw error
      }
    },
    async register(subject, _version, schema) {
      const { body } = await call('POST', `${subjectUrl(subject)}/versions`, payload(schema))
      const id = isObject(body) && typeof body.id === 'number' ? body.id : undefined
      // The answer has only the id; ask which version number the registry gave it.
      const found = await this.lookup(subject, _version, schema)
      return { registryVersion: found.registryVersion ?? '?', ...(id === undefined ? {} : { id }) }
    },
    async getCompatibility(subject): Promise<Compatibility | undefined> {
      try {
        const { body } = await call('GET', `${base}/config/${encodeURIComponent(subject)}?defaultToGlobal=false`)
        const level = isObject(body) ? (body.compatibilityLevel ?? body.compatibility) : undefined
        return isCompatibility(level) ? level : undefined
      } catch (error) {
        if (isNotFound(error)) return undefined
        throw error
      }
    },
    async setCompatibility(subject, mode) {
      await call('PUT', `${base}/config/${encodeURIComponent(subject)}`, { compatibility: mode })
    },
    async test(subject, schema): Promise<RegistryVerdict> {
      try {
        const url = `${base}/compatibility/subjects/${encodeURIComponent(subject)}/versions/latest?verbose=true`
        const { body } = await call('POST', url, payload(schema))
        if (!isObject(body) || typeof body.is_compatible !== 'boolean') {
          throw new FatalError(`unexpected compatibility answer from ${base}: ${JSON.stringify(body)}`)
        }
        const messages = Array.isArray(body.messages) ? body.messages.map(String) : []
        return { compatible: body.is_compatible, messages }
      } catch (error) {
        if (isNotFound(error)) return { compatible: true, messages: ['subject not registered'], unregistered: true }
        throw error
      }
    },
    async schemaById(id) {
      const { body } = await call('GET', `${base}/schemas/ids/${id}`)
      if (!isObject(body) || typeof body.schema !== 'string') throw new FatalError(`no schema text for id ${id}`)
      return body.schema
    }
  }
}

/** Equal JSON, whatever the whitespace: registries may store a normalized form. */
export function sameSchemaText(a: string, b: string): boolean {
  try {
    return jsonEqual(JSON.parse(a), JSON.parse(b))
  } catch {
    return a === b
  }
}
