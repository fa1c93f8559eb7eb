import { FatalError } from '../../errors.ts'
import { redact } from '../../logger.ts'
import { apicurioRegistry } from './apicurio.ts'
import { type RegistryApi, RegistryApis, type RegistryClient } from './client.ts'
import { confluentRegistry } from './confluent.ts'

export { apicurioRegistry } from './apicurio.ts'
export type { RegistryApi, RegistryClient, RegistryVerdict, VersionLookup } from './client.ts'
export { RegistryApis } from './client.ts'
export { confluentRegistry } from './confluent.ts'
export { registerSubjects, testSubjects } from './sync.ts'

export interface RegistryOptions {
  /**
   * `…/apis/registry/v3` → Apicurio's native API; `…/apis/ccompat/v7` or any other path → the Confluent API; a bare
   * `http://host:port` is probed: Apicurio's native API when `/apis/registry/v3/system/info` answers, else Confluent.
   */
  url: string
  /** Forces the API instead of guessing it from the URL. */
  api?: RegistryApi
  timeoutMs?: number
  headers?: Readonly<Record<string, string>>
}

const registryDefaults = { timeoutMs: 10_000 } satisfies Partial<RegistryOptions>

export async function createRegistryClient(options: RegistryOptions): Promise<RegistryClient> {
  let parsed: URL
  try {
    parsed = new URL(options.url)
  } catch {
    throw new FatalError(`schema registry URL is not a URL: ${redact(String(options.url))}`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new FatalError(`schema registry URL must be http(s), got ${parsed.protocol}`)
  }
  if (parsed.username !== '' || parsed.password !== '') {
    throw new FatalError('put registry credentials in SCHEMA_REGISTRY_AUTHORIZATION, not in the URL')
  }
  if (options.api !== undefined && !Object.values(RegistryApis).includes(options.api)) {
    throw new FatalError(`registry API must be one of ${Object.values(RegistryApis).join(', ')}`)
  }
  const http = { timeoutMs: options.timeoutMs ?? registryDefaults.timeoutMs, headers: options.headers ?? {} }
  const url = options.url.replace(/\/+$/, '')
  const path = parsed.pathname.replace(/\/+$/, '')
  let api = options.api
  if (api === undefined) {
    if (path.endsWith('/apis/registry/v3')) api = 'apicurio'
    else if (path !== '') api = 'confluent'
    else api = (await answers(`${url}/apis/registry/v3/system/info`, http.timeoutMs)) ? 'apicurio' : 'confluent'
  }
  if (api === 'apicurio') {
    return apicurioRegistry(path === '' ? `${url}/apis/registry/v3` : url, http)
  }
  return confluentRegistry(url, http)
}

async function answers(url: string, timeoutMs: number): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
    await response.body?.cancel()
    return response.ok
  } catch {
    return false
  }
}
