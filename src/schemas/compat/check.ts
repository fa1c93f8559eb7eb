import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormatsModule from 'ajv-formats'
import { errorMessage } from '../../errors.ts'
import { type Compatibility, type LoadSchemaOptions, listSubjects, loadSubjectHistory } from '../../schemas.ts'
import { breaks, type Direction, modeRules, type SchemaChange } from './change.ts'
import { diffSchemas } from './diff.ts'

// ajv-formats is CommonJS with `module.exports = plugin`; under NodeNext its default import is typed as the module.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default

export interface VersionedSchema {
  readonly version: number | string
  readonly schema: unknown
}

/** One reason a version is not compatible with an earlier one. */
export interface CompatibilityIssue {
  readonly subject?: string
  /** The earlier version it was checked against. */
  readonly from: number | string
  /** The version being checked. */
  readonly to: number | string
  /** BACKWARD: readers on `to` cannot read data written with `from`; FORWARD: the reverse. */
  readonly direction: Direction
  readonly rule: string
  readonly path: string
  readonly message: string
  /** The construct the checker could not decide (the issue is then a break by default, not a proven one). */
  readonly undecided?: string
}

export interface CompatibilityResult {
  readonly mode: Compatibility
  readonly compatible: boolean
  readonly issues: readonly CompatibilityIssue[]
}

/**
 * Checks a proposed version against the existing ones the way a registry does: BACKWARD/FORWARD/FULL against the
 * latest existing version, the `_TRANSITIVE` forms against every existing version, NONE not at all.
 */
export function checkCompatibility(
  mode: Compatibility,
  existing: readonly VersionedSchema[],
  proposed: VersionedSchema,
  subject?: string
): CompatibilityResult {
  const { directions, transitive } = modeRules(mode)
  const issues: CompatibilityIssue[] = []
  if (directions.length > 0 && existing.length > 0) {
    const against = transitive ? existing : existing.slice(-1)
    for (const earlier of against) {
      const changes = diffSchemas(earlier.schema, proposed.schema)
      for (const direction of directions) {
        for (const change of changes.filter((c) => breaks(c, direction))) {
          issues.push(issueOf(change, direction, earlier.version, proposed.version, subject))
        }
      }
    }
  }
  return { mode, compatible: issues.length === 0, issues }
}

function issueOf(
  change: SchemaChange,
  direction: Direction,
  from: number | string,
  to: number | string,
  subject: string | undefined
): CompatibilityIssue {
  return {
    ...(subject === undefined ? {} : { subject }),
    from,
    to,
    direction,
    rule: change.type,
    path: change.path,
    message: change.message,
    ...(change.undecided === undefined ? {} : { undecided: change.undecided })
  }
}

const label = (version: number | string) => (typeof version === 'number' ? `v${version}` : version)

/** `memory.event v2 → v1 BACKWARD REQUIRED_PROPERTY_ADDED at #/required: "x" is now required …` */
export function formatIssue(issue: CompatibilityIssue): string {
  const subject = issue.subject === undefined ? '' : `${issue.subject} `
  return `${subject}${label(issue.to)} vs ${label(issue.from)}: ${issue.direction} ${issue.rule} at ${issue.path}: ${issue.message}`
}

export interface SubjectReport {
  readonly subject: string
  readonly mode: Compatibility
  readonly versions: readonly number[]
  /** Each version from the second on, checked against its predecessors as the registry did when registering it. */
  readonly issues: readonly CompatibilityIssue[]
  /** Files that are not valid JSON Schema 2020-12 for ajv (strict mode, with formats), or broken metadata. */
  readonly errors: readonly string[]
}

/**
 * Checks every subject of a schemas directory: metadata, that ajv compiles each version, and that each version is
 * compatible with the ones before it under the subject's mode (so editing an old version is caught too, not only
 * adding a new one).
 */
export async function checkSchemasDir(options: LoadSchemaOptions = {}): Promise<SubjectReport[]> {
  const reports: SubjectReport[] = []
  for (const subject of await listSubjects(options)) {
    let history: Awaited<ReturnType<typeof loadSubjectHistory>>
    try {
      history = await loadSubjectHistory(subject, options)
    } catch (error) {
      reports.push({ subject, mode: 'NONE', versions: [], issues: [], errors: [errorMessage(error)] })
      continue
    }
    const errors: string[] = []
    // A fresh ajv per run: the process-wide one in validate.ts caches by $id, and a changed file keeps its $id.
    const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true })
    addFormats(ajv)
    for (const loaded of history.schemas) {
      try {
        ajv.compile(loaded.schema)
      } catch (error) {
        errors.push(`${subject} v${loaded.version}: ajv cannot compile it: ${errorMessage(error)}`)
      }
    }
    const versions = history.schemas.map((s) => ({ version: s.version, schema: s.schema }))
    const issues: CompatibilityIssue[] = []
    for (let i = 1; i < versions.length; i++) {
      issues.push(...checkCompatibility(history.compatibility, versions.slice(0, i), versions[i]!, subject).issues)
    }
    reports.push({ subject, mode: history.compatibility, versions: history.versions, issues, errors })
  }
  return reports
}
