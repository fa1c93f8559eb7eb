import {
  ErrorCodes,
  type ErrorKind,
  ErrorKinds,
  errorMessage,
  FatalError,
  PoisonError,
  RetriableError,
  type SfmError
} from '../errors.ts'

/**
 * Maps what `pg` throws to the framework's error kinds, by SQLSTATE class
 * (https://www.postgresql.org/docs/current/errcodes-appendix.html):
 *
 * - poison: the data of some row is refused by the database on its own — 22 data exception (`\u0000` in jsonb,
 *   invalid uuid, out-of-range number), 23 integrity constraint, 54 program limit (e.g. index row too large).
 *   The writer bisects the batch to find the row.
 * - fatal: configuration — 28 authorization, 3D unknown database, 42 syntax/undefined table/privilege, 0A feature
 *   not supported, 3F unknown schema, 58P01 undefined file (an extension that is not installed: `CREATE EXTENSION
 *   vector` on a server without pgvector).
 * - retriable: everything else, in particular 08 connection, 40001 serialization failure, 40P01 deadlock, 53
 *   insufficient resources (53300 too many connections), 57P01..03 shutdown/starting, 57014 statement timeout, 55P03
 *   lock not available, 58 system I/O, and errors without a SQLSTATE (socket errors, "Connection terminated").
 */
const POISON_CLASSES = new Set(['22', '23', '54'])
const FATAL_CLASSES = new Set(['28', '3D', '3F', '42', '0A'])
const FATAL_STATES = new Set(['58P01'])
const SQLSTATE = /^[0-9A-Z]{5}$/

export function sqlState(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined
  const code = (error as { code?: unknown }).code
  return typeof code === 'string' && SQLSTATE.test(code) ? code : undefined
}

export function classifyPgError(error: unknown): ErrorKind {
  const state = sqlState(error)
  if (state === undefined) return ErrorKinds.RETRIABLE
  const cls = state.slice(0, 2)
  if (POISON_CLASSES.has(cls)) return ErrorKinds.POISON
  if (FATAL_CLASSES.has(cls) || FATAL_STATES.has(state)) return ErrorKinds.FATAL
  return ErrorKinds.RETRIABLE
}

/**
 * Facts safe to log: SQLSTATE and the names the server reports. Not `detail`, which can quote row data
 * ("Failing row contains …").
 */
function pgDetails(error: unknown, extra: Record<string, unknown>): Record<string, unknown> {
  const details: Record<string, unknown> = { ...extra }
  const state = sqlState(error)
  if (state !== undefined) details.sqlstate = state
  if (typeof error === 'object' && error !== null) {
    const e = error as { table?: unknown; column?: unknown; constraint?: unknown; code?: unknown }
    if (typeof e.table === 'string') details.table = e.table
    if (typeof e.column === 'string') details.column = e.column
    if (typeof e.constraint === 'string') details.constraint = e.constraint
    if (state === undefined && typeof e.code === 'string') details.code = e.code
  }
  return details
}

/** Wraps a pg error into the SfmError of its kind, keeping it as `cause`. */
export function toSinkError(error: unknown, what: string, extra: Record<string, unknown> = {}): SfmError {
  const kind = classifyPgError(error)
  const message = `${what}: ${errorMessage(error)}`
  const options = { cause: error, details: pgDetails(error, extra) }
  if (kind === ErrorKinds.POISON) return new PoisonError(message, { ...options, code: ErrorCodes.SINK_REJECTED })
  if (kind === ErrorKinds.FATAL) return new FatalError(message, { ...options, code: ErrorCodes.CONFIG })
  const state = sqlState(error)
  const code = state === '57014' ? ErrorCodes.TIMEOUT : ErrorCodes.UNAVAILABLE
  return new RetriableError(message, { ...options, code })
}
