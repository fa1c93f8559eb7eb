/**
 * The file `npm run parity -- --out FILE` writes and `npm run backfill -- --repair FILE` reads: the ids of each class
 * of difference between the legacy store and the `memories` table.
 */
import { readFile, stat } from 'node:fs/promises'
import { describeError, ErrorCodes, FatalError } from '../../errors.ts'
import { jsonDepthExceeds } from '../../streams/operators/decode-json.ts'

export const PARITY_REPORT_KIND = 'sfm.parity-report'
export const PARITY_REPORT_VERSION = 1

/** The classes of difference, in the order they are reported. */
export const ParityClasses = {
  /** In the legacy store, no row here. */
  MISSING: 'missing',
  /** Live here, gone from the legacy store. */
  EXTRA: 'extra',
  /** Both live, payloads differ after the ignored fields. */
  DIFFERING: 'differing',
  /** Deleted here, live in the legacy store. */
  DELETED_HERE: 'deleted_here'
} as const
export type ParityClass = (typeof ParityClasses)[keyof typeof ParityClasses]
export const PARITY_CLASSES: readonly ParityClass[] = Object.values(ParityClasses)

export interface ParityReport {
  readonly kind: typeof PARITY_REPORT_KIND
  readonly version: typeof PARITY_REPORT_VERSION
  /** When the comparison finished, RFC 3339. */
  readonly finished_at: string
  readonly namespace: string | null
  readonly compared: { readonly legacy: number; readonly here: number }
  readonly counts: Readonly<Record<ParityClass, number>>
  /** The ids of each class (all of them: `backfill --repair` re-emits exactly these). */
  readonly ids: Readonly<Record<ParityClass, readonly string[]>>
  /** With `--vectors`: live memories without a vector, deleted ones with a live vector (re-emitted by a repair too). */
  readonly vectors?: { readonly ids: { readonly missing: readonly string[]; readonly orphaned: readonly string[] } }
}

/** Reports hold one id (≤ 256 characters) per difference; 1 GiB is millions of ids. */
const MAX_REPORT_BYTES = 1024 * 1024 * 1024

function notAReport(path: string, why: string): FatalError {
  return new FatalError(`${path} is not a parity report (${why}) — write one with npm run parity -- --out ${path}`, {
    code: ErrorCodes.CONFIG
  })
}

/** Reads and checks a parity report. Anything else is a FatalError (configuration) that says so. */
export async function readParityReport(path: string): Promise<ParityReport> {
  let bytes: Buffer
  try {
    const info = await stat(path)
    if (!info.isFile()) throw notAReport(path, 'not a file')
    if (info.size > MAX_REPORT_BYTES) throw notAReport(path, `${info.size} bytes, over ${MAX_REPORT_BYTES}`)
    bytes = await readFile(path)
  } catch (error) {
    if (error instanceof FatalError) throw error
    throw new FatalError(`cannot read the parity report ${path}: ${describeError(error)}`, { code: ErrorCodes.CONFIG })
  }
  if (jsonDepthExceeds(bytes, 8)) throw notAReport(path, 'nested too deep')
  let value: unknown
  try {
    value = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw notAReport(path, 'not JSON')
  }
  const report = value as Partial<ParityReport> | null
  if (typeof report !== 'object' || report === null || report.kind !== PARITY_REPORT_KIND) {
    throw notAReport(path, `no "kind": "${PARITY_REPORT_KIND}"`)
  }
  if (report.version !== PARITY_REPORT_VERSION) throw notAReport(path, `version ${String(report.version)}, expected 1`)
  const ids = report.ids as Record<string, unknown> | undefined
  if (typeof ids !== 'object' || ids === null) throw notAReport(path, 'no "ids"')
  for (const name of PARITY_CLASSES) {
    const list = ids[name]
    if (!Array.isArray(list) || !list.every((id) => typeof id === 'string' && id.length > 0 && id.length <= 256)) {
      throw notAReport(path, `"ids.${name}" is not a list of memory ids`)
    }
  }
  if (report.vectors !== undefined) {
    const vectorIds = (report.vectors as { ids?: Record<string, unknown> } | null)?.ids
    for (const name of ['missing', 'orphaned']) {
      const list = vectorIds?.[name]
      if (!Array.isArray(list) || !list.every((id) => typeof id === 'string' && id.length > 0 && id.length <= 256)) {
        throw notAReport(path, `"vectors.ids.${name}" is not a list of memory ids`)
      }
    }
  }
  return report as ParityReport
}
