import { FatalError } from '../../errors.ts'
import { type Compatibility, isCompatibility } from '../../schemas.ts'
import { isObject } from '../compat/json.ts'
import type { RegistryClient, RegistryVerdict, VersionLookup } from './client.ts'
import { sameSchemaText } from './confluent.ts'
import { type HttpOptions, isNotFound, RegistryHttpError, registryErrorMessages, requestJson } from './http.ts'

/**
 * Apicurio Registry's native v3 API (`/apis/registry/v3`). Artifacts live in group `default` — the group Apicurio's
 * ccompat API maps Confluent subjects to — and local version N is registered as version "N", so lookups are by
 * number and content drift is detected.
 */
export function apicurioRegistry(baseUrl: string, options: HttpOptions & { group?: string }): RegistryClient {
  const base = baseUrl.replace(/\/+$/, '')
  const group = options.group ?? 'default'
  const artifactUrl = (subject: string) =>
    `${base}/groups/${encodeURIComponent(group)}/artifacts/${encodeURIComponent(subject)}`
  const call = (method: string, url: string, body?: unknown) => requestJson(method, url, body, options)
  const content = (schema: string) => ({ content: schema, contentType: 'application/json' })

  return {
    api: 'apicurio',
    url: base,
    async lookup(subject, version, schema): Promise<VersionLookup> {
      try {
        const { body } = await call('GET', `${artifactUrl(subject)}/versions/${version}/content`)
        const text = typeof body === 'string' ? body : JSON.stringify(body)
        if (!sameSchemaText(text, schema)) return { state: 'different', registryVersion: String(version) }
        const meta = await call('GET', `${artifactUrl(subject)}/versions/${version}`)
        const id = isObject(meta.body) && typeof meta.body.globalId === 'number' ? meta.body.globalId : undefined
        return { state: 'same', registryVersion: String(version), ...(id === undefined ? {} : { id }) }
      } catch (error) {
        if (isNotFound(error)) return { state: 'missing' }
        throw error
      }
    },
    async register(subject, version, schema) {
      const firstVersion = { version: String(version), content: content(schema) }
      let body: unknown
      try {
        await call('GET', artifactUrl(subject))
        body = (await call('POST', `${artifactUrl(subject)}/versions`, firstVersion)).body
      } catch (error) {
        if (!isNotFound(error)) throw error
        const created = await call('POST', `${base}/groups/${encodeURIComponent(group)}/artifacts`, {
          artifactId: subject,
          artifactType: 'JSON',
          firstVersion
        })
        body = isObject(created.body) ? created.body.version : undefined
      }
      const id = isObject(body) && typeof body.globalId === 'number' ? body.globalId : undefined
      return { registryVersion: String(version), ...(id === undefined ? {} : { id }) }
    },
    async getCompatibility(subject): Promise<Compatibility | undefined> {
      try {
        const { body } = await call('GET', `${artifactUrl(subject)}/rules/COMPATIBILITY`)
        const config = isObject(body) ? body.config : undefined
        return isCompatibility(config) ? config : undefined
      } catch (error) {
        if (isNotFound(error)) return undefined
        throw error
      }
    },
    async setCompatibility(subject, mode) {
      try {
        await call('PUT', `${artifactUrl(subject)}/rules/COMPATIBILITY`, { ruleType: 'COMPATIBILITY', config: mode })
      } catch (error) {
        if (!isNotFound(error)) throw error
        await call('POST', `${artifactUrl(subject)}/rules`, { ruleType: 'COMPATIBILITY', config: mode })
      }
    },
    async test(subject, schema): Promise<RegistryVerdict> {
      try {
        await call('POST', `${artifactUrl(subject)}/versions?dryRun=true`, { content: content(schema) })
        return { compatible: true, messages: [] }
      } catch (error) {
        if (isNotFound(error)) return { compatible: true, messages: ['artifact not registered'], unregistered: true }
        if (isRuleViolation(error)) {
          return { compatible: false, messages: registryErrorMessages(error.body) }
        }
        throw error
      }
    },
    async schemaById(id) {
      const { body } = await call('GET', `${base}/ids/globalIds/${id}`)
      if (typeof body === 'string') return body
      if (isObject(body)) return JSON.stringify(body)
      throw new FatalError(`no schema text for global id ${id}`)
    }
  }
}

/** Apicurio 3 answers a rule violation with 400 (409 in 2.x) and `name: RuleViolationException`. */
export function isRuleViolation(error: unknown): error is RegistryHttpError {
  if (!(error instanceof RegistryHttpError)) return false
  if (error.status === 409) return true
  const body = error.body as { name?: unknown } | null
  return error.status === 400 && typeof body === 'object' && body !== null && body.name === 'RuleViolationException'
}
