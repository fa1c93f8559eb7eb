import { ErrorCodes, errorMessage, FatalError, PoisonError, RetriableError, type SfmError } from '../../errors.ts'

/**
 * Maps what @qdrant/js-client-rest throws to the framework's error kinds. The client raises the fetcher's
 * `ApiError` (with `status` and the server's `data.status.error`) for non-2xx answers, QdrantClientTimeoutError
 * for its own timeout, and fetch's TypeError ("fetch failed", cause ECONNREFUSED…) when the server is not there.
 *
 * - 401, 403: fatal (API key).
 * - 400, 422: poison — Qdrant refused the content of the request (the sink bisects to find the point).
 * - 404: retriable — the collection vanished (deleted by hand); the store re-creates it on the next open.
 * - 408, 409, 429, 5xx, timeouts, network errors and anything unknown: retriable (hold and retry).
 */
export function toQdrantError(error: unknown, what: string): SfmError {
  const status = statusOf(error)
  const reason = serverReason(error) ?? errorMessage(error)
  const details: Record<string, unknown> = status === undefined ? {} : { status }
  const message = `qdrant: ${what}: ${status === undefined ? '' : `HTTP ${status}: `}${reason}`
  if (status === 401 || status === 403) {
    return new FatalError(`${message} (check QDRANT_API_KEY)`, { cause: error, details })
  }
  if (status === 400 || status === 422) return new PoisonError(message, { cause: error, details })
  const name = (error as { name?: unknown } | null)?.name
  const code =
    name === 'QdrantClientTimeoutError' || name === 'TimeoutError' ? ErrorCodes.TIMEOUT : ErrorCodes.UNAVAILABLE
  return new RetriableError(message, { cause: error, details, code })
}

export function statusOf(error: unknown): number | undefined {
  const status = (error as { status?: unknown } | null)?.status
  return typeof status === 'number' ? status : undefined
}

function serverReason(error: unknown): string | undefined {
  const data = (error as { data?: { status?: { error?: unknown } } } | null)?.data
  const reason = data?.status?.error
  return typeof reason === 'string' ? reason.slice(0, 300) : undefined
}
