import { errorMessage } from '../../errors.ts'
import { type LoadSchemaOptions, listSubjects, loadSubjectHistory } from '../../schemas.ts'
import { isRuleViolation } from './apicurio.ts'
import type { RegistryClient } from './client.ts'
import { RegistryHttpError, registryErrorMessages } from './http.ts'

export interface SyncReport {
  /** False when something was refused or drifted: the CLI exits 1. */
  readonly ok: boolean
  /** `+` registered / set, `=` already so, `~` changed, `!` refused or wrong. */
  readonly lines: readonly string[]
}

/** The exact text registered: the parsed file re-serialized, so every run sends byte-identical content. */
function schemaText(schema: unknown): string {
  return JSON.stringify(schema)
}

/**
 * Registers every local subject/version the registry lacks, in version order, and sets each subject's compatibility
 * rule from its subject.json right after its first version exists (so the registry itself checks every later one).
 * Idempotent: a second run reports everything as `=`.
 */
export async function registerSubjects(client: RegistryClient, options: LoadSchemaOptions = {}): Promise<SyncReport> {
  const lines: string[] = []
  let ok = true
  for (const subject of await listSubjects(options)) {
    const history = await loadSubjectHistory(subject, options)
    for (const [index, loaded] of history.schemas.entries()) {
      const text = schemaText(loaded.schema)
      const name = `${subject} v${loaded.version}`
      const found = await client.lookup(subject, loaded.version, text)
      if (found.state === 'different') {
        lines.push(
          `! ${name}: the registry holds version ${found.registryVersion} with other content (versions are immutable: add a new version)`
        )
        ok = false
        break
      }
      if (found.state === 'same') {
        lines.push(`= ${name} already registered (registry version ${found.registryVersion}${idText(found.id)})`)
      } else {
        try {
          const done = await client.register(subject, loaded.version, text)
          lines.push(`+ ${name} registered as registry version ${done.registryVersion}${idText(done.id)}`)
        } catch (error) {
          // Confluent answers 409, Apicurio 3 400 with a RuleViolationException body.
          if (!isRuleViolation(error)) throw error
          lines.push(
            `! ${name} rejected by the registry (${history.compatibility}): ${registryErrorMessages(error.body).join('; ')}`
          )
          ok = false
          break
        }
      }
      if (index === 0) {
        const current = await client.getCompatibility(subject)
        if (current === history.compatibility) lines.push(`= ${subject} compatibility ${current}`)
        else {
          await client.setCompatibility(subject, history.compatibility)
          lines.push(`~ ${subject} compatibility ${current ?? '(registry default)'} → ${history.compatibility}`)
        }
      }
    }
  }
  return { ok, lines }
}

const idText = (id: number | undefined) => (id === undefined ? '' : `, id ${id}`)

/**
 * Asks the registry whether each subject's newest local version would be accepted. A version already registered
 * was accepted when it was registered; a subject the registry does not know has nothing to be compatible with.
 */
export async function testSubjects(client: RegistryClient, options: LoadSchemaOptions = {}): Promise<SyncReport> {
  const lines: string[] = []
  let ok = true
  for (const subject of await listSubjects(options)) {
    try {
      const history = await loadSubjectHistory(subject, options)
      const newest = history.schemas.at(-1)!
      const name = `${subject} v${newest.version}`
      const text = schemaText(newest.schema)
      const found = await client.lookup(subject, newest.version, text)
      if (found.state === 'same') {
        lines.push(`= ${name} is registered (registry version ${found.registryVersion})`)
        continue
      }
      if (found.state === 'different') {
        lines.push(`! ${name}: the registry holds version ${found.registryVersion} with other content`)
        ok = false
        continue
      }
      const rule = await client.getCompatibility(subject)
      if (rule !== undefined && rule !== history.compatibility) {
        lines.push(
          `~ ${subject}: the registry's rule is ${rule}, subject.json says ${history.compatibility} (run register)`
        )
      }
      const verdict = await client.test(subject, text)
      if (verdict.unregistered) lines.push(`= ${subject} is not in the registry yet: nothing to check against`)
      else if (verdict.compatible) lines.push(`+ ${name} compatible per the registry (${rule ?? 'registry default'})`)
      else {
        const why = verdict.messages.length > 0 ? `: ${verdict.messages.join('; ')}` : ''
        lines.push(`! ${name} incompatible per the registry (${rule ?? 'registry default'})${why}`)
        ok = false
      }
    } catch (error) {
      if (error instanceof RegistryHttpError || !(error instanceof Error)) {
        lines.push(`! ${subject}: ${errorMessage(error)}`)
        ok = false
        continue
      }
      throw error
    }
  }
  return { ok, lines }
}
