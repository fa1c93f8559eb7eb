import type { Compatibility } from '../../schemas.ts'

/** The two registry APIs spoken: Apicurio's native v3 API, and the Confluent API (Confluent, Karapace, Apicurio ccompat). */
export const RegistryApis = {
  APICURIO: 'apicurio',
  CONFLUENT: 'confluent'
} as const
export type RegistryApi = (typeof RegistryApis)[keyof typeof RegistryApis]

export interface VersionLookup {
  /** `same`: the registry holds this version with equal content; `different`: with other content; `missing`. */
  readonly state: 'same' | 'different' | 'missing'
  /** The registry's name for the version that holds this content (Confluent numbers versions itself). */
  readonly registryVersion?: string
  /** Global schema id, as framed on the wire. */
  readonly id?: number
}

export interface RegistryVerdict {
  readonly compatible: boolean
  /** What the registry said; Apicurio lists rule violations with their JSON paths, ccompat says little. */
  readonly messages: readonly string[]
  /** The subject does not exist there yet: nothing to be compatible with. */
  readonly unregistered?: boolean
}

/**
 * What `npm run schemas` needs from a registry. A subject is an artifact in Apicurio (group `default`, so that the
 * native and the ccompat API see the same artifacts) and a subject in the Confluent API.
 */
export interface RegistryClient {
  readonly api: RegistryApi
  /** The API base URL, for messages. */
  readonly url: string
  /** Whether local version `version` (with this content) is registered. */
  lookup(subject: string, version: number, schema: string): Promise<VersionLookup>
  /** Registers a version; the registry applies the subject's compatibility rule and rejects a violation. */
  register(subject: string, version: number, schema: string): Promise<{ registryVersion: string; id?: number }>
  /** The subject's compatibility rule, or undefined when it has none of its own. */
  getCompatibility(subject: string): Promise<Compatibility | undefined>
  setCompatibility(subject: string, mode: Compatibility): Promise<void>
  /** Would the registry accept this schema as the subject's next version? Nothing is stored. */
  test(subject: string, schema: string): Promise<RegistryVerdict>
  /** Schema by global id (what the Confluent wire framing carries). */
  schemaById(id: number): Promise<string>
}
