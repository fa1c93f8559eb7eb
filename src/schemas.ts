import type { Dirent } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { resolve, sep } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { FatalError } from './errors.ts'

/**
 * Loads versioned JSON Schemas from `schemas/<subject>/v<version>.json`, with the subject's metadata (its
 * compatibility mode and list of versions) in `schemas/<subject>/subject.json`. The layout mirrors a schema
 * registry's subjects so the files can be registered there as they are.
 */

/** A JSON Schema document (2020-12 dialect). Kept open: ajv takes it as is. */
export interface JsonSchema {
  readonly $schema?: string
  readonly $id?: string
  readonly [keyword: string]: unknown
}

export const Compatibilities = {
  BACKWARD: 'BACKWARD',
  BACKWARD_TRANSITIVE: 'BACKWARD_TRANSITIVE',
  FORWARD: 'FORWARD',
  FORWARD_TRANSITIVE: 'FORWARD_TRANSITIVE',
  FULL: 'FULL',
  FULL_TRANSITIVE: 'FULL_TRANSITIVE',
  NONE: 'NONE'
} as const
export type Compatibility = (typeof Compatibilities)[keyof typeof Compatibilities]

export function isCompatibility(value: unknown): value is Compatibility {
  return typeof value === 'string' && Object.hasOwn(Compatibilities, value)
}

export interface SubjectInfo {
  readonly subject: string
  readonly compatibility: Compatibility
  /** Known versions, ascending. */
  readonly versions: readonly number[]
}

export interface LoadedSchema {
  readonly subject: string
  readonly version: number
  readonly compatibility: Compatibility
  readonly schema: JsonSchema
}

export interface LoadSchemaOptions {
  /** Directory holding one folder per subject. Defaults to the repository's `schemas/`. */
  readonly dir?: URL | string
}

const DEFAULT_DIR = new URL('../schemas/', import.meta.url)
/** Subject names become path segments: no separators, no `..`. */
const SUBJECT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/

function subjectDir(subject: string, dir: URL | string | undefined): URL {
  if (!SUBJECT_PATTERN.test(subject) || subject.includes('..')) {
    throw new FatalError(`invalid schema subject ${JSON.stringify(subject)}: use letters, digits, '.', '_' or '-'`)
  }
  let base = dir ?? DEFAULT_DIR
  if (typeof base === 'string') base = pathToFileURL(resolve(base) + sep)
  return new URL(`${subject}/`, base)
}

async function readJson(url: URL, what: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(url, 'utf8')
  } catch (error) {
    throw new FatalError(`${what} not found at ${url.pathname}`, { cause: error })
  }
  try {
    return JSON.parse(text)
  } catch (error) {
    throw new FatalError(`${what} at ${url.pathname} is not valid JSON`, { cause: error })
  }
}

export async function loadSubject(subject: string, options: LoadSchemaOptions = {}): Promise<SubjectInfo> {
  const url = new URL('subject.json', subjectDir(subject, options.dir))
  const raw = (await readJson(url, `subject ${subject}`)) as Record<string, unknown> | null
  const compatibility = raw?.compatibility
  const versions = raw?.versions
  if (!isCompatibility(compatibility)) {
    throw new FatalError(
      `subject ${subject}: compatibility must be one of ${Object.values(Compatibilities).join(', ')}`
    )
  }
  if (!Array.isArray(versions) || versions.length === 0 || !versions.every((v) => Number.isSafeInteger(v) && v > 0)) {
    throw new FatalError(`subject ${subject}: versions must be a non-empty array of positive integers`)
  }
  return {
    subject,
    compatibility,
    versions: [...(versions as number[])].sort((a, b) => a - b)
  }
}

/** Loads one version of a subject's schema; without `version`, the latest. */
export async function loadSchema(
  subject: string,
  version?: number,
  options: LoadSchemaOptions = {}
): Promise<LoadedSchema> {
  const info = await loadSubject(subject, options)
  const wanted = version ?? info.versions[info.versions.length - 1]!
  if (!info.versions.includes(wanted)) {
    throw new FatalError(`subject ${subject} has no version ${wanted} (known: ${info.versions.join(', ')})`)
  }
  const url = new URL(`v${wanted}.json`, subjectDir(subject, options.dir))
  const schema = await readJson(url, `schema ${subject} v${wanted}`)
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    throw new FatalError(`schema ${subject} v${wanted} must be a JSON object`)
  }
  if (typeof (schema as JsonSchema).$id !== 'string') {
    throw new FatalError(`schema ${subject} v${wanted} needs an $id so validators can cache and reference it`)
  }
  return { subject, version: wanted, compatibility: info.compatibility, schema: schema as JsonSchema }
}

/** The schemas directory as a path: `dir` when given, else the repository's `schemas/`. */
export function schemasDir(dir?: URL | string): string {
  if (dir === undefined) return fileURLToPath(DEFAULT_DIR)
  return typeof dir === 'string' ? resolve(dir) : fileURLToPath(dir)
}

/** Subjects in a schemas directory: the folders that hold a `subject.json`, sorted. */
export async function listSubjects(options: LoadSchemaOptions = {}): Promise<string[]> {
  const dir = schemasDir(options.dir)
  let entries: Dirent[]
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch (error) {
    throw new FatalError(`schemas directory not found at ${dir}`, { cause: error })
  }
  const subjects: string[] = []
  for (const entry of entries) {
    if (!entry.isDirectory() || !SUBJECT_PATTERN.test(entry.name)) continue
    const files = await readdir(resolve(dir, entry.name)).catch(() => [] as string[])
    if (files.includes('subject.json')) subjects.push(entry.name)
  }
  return subjects.sort()
}

export interface SubjectHistory extends SubjectInfo {
  /** Every version, ascending. */
  readonly schemas: readonly LoadedSchema[]
}

/**
 * Loads every version of a subject, and checks that `subject.json` lists exactly the `v<N>.json` files present (a
 * version file that is not listed would silently never be checked or registered).
 */
export async function loadSubjectHistory(subject: string, options: LoadSchemaOptions = {}): Promise<SubjectHistory> {
  const info = await loadSubject(subject, options)
  const files = await readdir(subjectDir(subject, options.dir))
  const onDisk = files
    .map((name) => /^v([1-9][0-9]*)\.json$/.exec(name)?.[1])
    .filter((v): v is string => v !== undefined)
    .map(Number)
  const unlisted = onDisk.filter((v) => !info.versions.includes(v))
  if (unlisted.length > 0) {
    throw new FatalError(
      `subject ${subject}: ${unlisted.map((v) => `v${v}.json`).join(', ')} not listed in subject.json "versions"`
    )
  }
  const schemas: LoadedSchema[] = []
  for (const version of info.versions) schemas.push(await loadSchema(subject, version, options))
  return { ...info, schemas }
}
