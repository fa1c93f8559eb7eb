/**
 * One error base class for the whole framework, after @platformatic/kafka's `GenericError`: every error carries a
 * stable `code` and says whether the operation can be retried. The runtime routes on `kind`:
 *
 * - `retriable`: the world is temporarily unavailable (broker, database, timeout). Retry with backoff and hold the
 *   partition (backpressure). Never dead-lettered.
 * - `poison`: this record, and only this record, cannot be processed (undecodable, invalid, rejected by a sink).
 *   Dead-lettered with the reason; the partition moves on.
 * - `fatal`: configuration or authorization is wrong. Stop with a clear message and a non-zero exit.
 */
export const ErrorKinds = {
  RETRIABLE: 'retriable',
  POISON: 'poison',
  FATAL: 'fatal'
} as const
export type ErrorKind = (typeof ErrorKinds)[keyof typeof ErrorKinds]

export const ErrorCodes = {
  CONFIG: 'SFM_CONFIG',
  DECODE: 'SFM_DECODE',
  VALIDATION: 'SFM_VALIDATION',
  SINK_REJECTED: 'SFM_SINK_REJECTED',
  UNAVAILABLE: 'SFM_UNAVAILABLE',
  TIMEOUT: 'SFM_TIMEOUT',
  SHUTDOWN: 'SFM_SHUTDOWN',
  INTERNAL: 'SFM_INTERNAL'
} as const
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes]

export interface SfmErrorOptions {
  cause?: unknown
  /** Extra, non-secret facts that help an operator (never passwords or message bodies). */
  details?: Record<string, unknown>
}

export class SfmError extends Error {
  readonly code: ErrorCode
  readonly kind: ErrorKind
  readonly details: Record<string, unknown>

  constructor(kind: ErrorKind, code: ErrorCode, message: string, options: SfmErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.kind = kind
    this.code = code
    this.details = options.details ?? {}
  }

  get canRetry(): boolean {
    return this.kind === ErrorKinds.RETRIABLE
  }
}

export class RetriableError extends SfmError {
  constructor(message: string, options: SfmErrorOptions & { code?: ErrorCode } = {}) {
    super(ErrorKinds.RETRIABLE, options.code ?? ErrorCodes.UNAVAILABLE, message, options)
  }
}

export class PoisonError extends SfmError {
  constructor(message: string, options: SfmErrorOptions & { code?: ErrorCode } = {}) {
    super(ErrorKinds.POISON, options.code ?? ErrorCodes.SINK_REJECTED, message, options)
  }
}

export class FatalError extends SfmError {
  constructor(message: string, options: SfmErrorOptions & { code?: ErrorCode } = {}) {
    super(ErrorKinds.FATAL, options.code ?? ErrorCodes.CONFIG, message, options)
  }
}

/** Node's socket-level error codes that mean "the other side is not there right now". */
const TRANSIENT_SYSTEM_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET'
])

/**
 * Node's file-system error codes that waiting cannot heal: a missing or unwritable path (ENOENT, EACCES, EPERM,
 * EROFS, ENOTDIR, EISDIR). Retrying them would hold the partition forever; an operator has to create, free or
 * point at another path. A full disk (ENOSPC) is not here: freeing space heals it.
 */
const PATH_SYSTEM_CODES = new Set(['ENOENT', 'EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EISDIR'])

/**
 * Classifies anything thrown into an ErrorKind. Errors the framework did not make are retriable when they look
 * like a transport failure (or say `canRetry`), fatal when they are a file-system error on a path (above), otherwise
 * retriable too: holding a partition is recoverable, while dead-lettering a record because of an unknown bug silently
 * loses it from the materialized view.
 */
export function kindOf(error: unknown): ErrorKind {
  if (error instanceof SfmError) return error.kind
  if (typeof error === 'object' && error !== null) {
    const e = error as { canRetry?: unknown; code?: unknown }
    if (e.canRetry === false && typeof e.code === 'string' && e.code === 'PLT_KFK_AUTHENTICATION') {
      return ErrorKinds.FATAL
    }
    if (typeof e.code === 'string' && TRANSIENT_SYSTEM_CODES.has(e.code)) return ErrorKinds.RETRIABLE
    const { path, syscall } = error as { path?: unknown; syscall?: unknown }
    if (typeof e.code === 'string' && PATH_SYSTEM_CODES.has(e.code) && (path !== undefined || syscall !== undefined)) {
      return ErrorKinds.FATAL
    }
  }
  return ErrorKinds.RETRIABLE
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message
  return String(error)
}
/**
 * One line for an operator. @platformatic/kafka wraps the broker's answer in `MultipleErrors` (`errors`) and
 * `cause`, and the outer message ("Creating topics failed.") alone says nothing; walk a few levels down.
 */
export function describeError(error: unknown, maxParts = 6): string {
  const parts = [errorMessage(error)]
  const seen = new Set<unknown>([error])
  const queue: unknown[] = []
  const children = (e: unknown) => {
    const o = e as { errors?: unknown; cause?: unknown }
    const next = Array.isArray(o.errors) ? [...o.errors, o.cause] : [o.cause]
    for (const child of next) {
      if (child && typeof child === 'object' && !seen.has(child)) {
        seen.add(child)
        queue.push(child)
      }
    }
  }
  children(error)
  while (queue.length > 0 && parts.length < maxParts) {
    const next = queue.shift()
    parts.push(errorMessage(next))
    children(next)
  }
  return [...new Set(parts)].join(': ')
}
