import { ErrorCodes, FatalError, RetriableError, SfmError } from '../errors.ts'

/** SQLite primary result codes (the low byte of `errcode`) that matter here. */
const SqliteCodes = {
  BUSY: 5,
  LOCKED: 6,
  NOMEM: 7,
  READONLY: 8,
  IOERR: 10,
  CORRUPT: 11,
  FULL: 13,
  CANTOPEN: 14,
  PROTOCOL: 15,
  CONSTRAINT: 19,
  NOTADB: 26
} as const

const RETRIABLE = new Set<number>([
  SqliteCodes.BUSY,
  SqliteCodes.LOCKED,
  SqliteCodes.NOMEM,
  SqliteCodes.IOERR,
  SqliteCodes.FULL,
  SqliteCodes.PROTOCOL
])

/**
 * Classifies an error thrown by `node:sqlite` (it carries `errcode` and `errstr`). Lock contention that outlasted
 * `busy_timeout`, a full disk or an I/O error are retriable: the runtime backs off and holds the partition.
 * A file that is not a database, corrupt or read-only needs an operator: fatal.
 */
export function toLogError(error: unknown, what: string, path: string): unknown {
  if (error instanceof SfmError) return error
  const e = error as { errcode?: unknown; message?: unknown }
  if (typeof e?.errcode !== 'number') return error
  const primary = e.errcode & 0xff
  const message = `embedded log ${path}: ${what}: ${String(e.message)}`
  if (RETRIABLE.has(primary)) return new RetriableError(message, { cause: error, code: ErrorCodes.UNAVAILABLE })
  if (primary === SqliteCodes.CONSTRAINT) {
    return new FatalError(message, { cause: error, code: ErrorCodes.INTERNAL })
  }
  return new FatalError(message, { cause: error, code: ErrorCodes.CONFIG })
}
