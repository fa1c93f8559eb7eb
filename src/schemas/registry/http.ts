import { ErrorCodes, FatalError, RetriableError } from '../../errors.ts'
import { redact } from '../../logger.ts'

/** A registry answer that is not 2xx, with the parsed body when it was JSON. */
export class RegistryHttpError extends FatalError {
  readonly status: number
  readonly body: unknown

  constructor(message: string, status: number, body: unknown) {
    super(message, { details: { status } })
    this.status = status
    this.body = body
  }
}

export interface HttpOptions {
  readonly timeoutMs: number
  /** Sent as is (e.g. `authorization`); never logged. */
  readonly headers?: Readonly<Record<string, string>>
}

/** Registry answers are small (schemas, version lists); a bigger one is refused before it is parsed. */
const MAX_BODY_BYTES = 4 * 1024 * 1024

/**
 * One JSON request. Network failures and 5xx are retriable (the registry may be starting); 4xx are fatal and carry
 * the registry's own error body so callers can tell "not found" from "rule violation".
 */
export async function requestJson(
  method: string,
  url: string,
  body: unknown,
  options: HttpOptions & { contentType?: string }
): Promise<{ status: number; body: unknown }> {
  let response: Response
  try {
    response = await fetch(url, {
      method,
      headers: {
        accept: 'application/json, application/vnd.schemaregistry.v1+json',
        ...(body === undefined ? {} : { 'content-type': options.contentType ?? 'application/json' }),
        ...options.headers
      },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      signal: AbortSignal.timeout(options.timeoutMs)
    })
  } catch (error) {
    throw new RetriableError(`schema registry ${method} ${redact(url)} failed: ${describeFetchError(error)}`, {
      code: ErrorCodes.UNAVAILABLE,
      cause: error
    })
  }
  const text = await response.text()
  if (text.length > MAX_BODY_BYTES) {
    throw new FatalError(`schema registry ${method} ${redact(url)}: answer larger than ${MAX_BODY_BYTES} bytes`)
  }
  let parsed: unknown = text
  if (text !== '') {
    try {
      parsed = JSON.parse(text)
    } catch {
      // Some answers (artifact content) are returned as text; keep it.
    }
  }
  if (response.status >= 500) {
    throw new RetriableError(`schema registry ${method} ${redact(url)}: HTTP ${response.status} ${snippet(parsed)}`)
  }
  if (response.status >= 400) {
    throw new RegistryHttpError(
      `schema registry ${method} ${redact(url)}: HTTP ${response.status} ${snippet(parsed)}`,
      response.status,
      parsed
    )
  }
  return { status: response.status, body: parsed }
}

function describeFetchError(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: { code?: unknown } }).cause
    if (cause !== undefined && typeof cause.code === 'string') return `${error.message} (${cause.code})`
    return error.message
  }
  return String(error)
}

function snippet(body: unknown): string {
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  return text.length > 300 ? `${text.slice(0, 300)}…` : text
}

export function isNotFound(error: unknown): boolean {
  return error instanceof RegistryHttpError && error.status === 404
}

/**
 * The reasons in a registry error body: Apicurio's RuleViolationProblemDetails (`causes: [{ description, context }]`,
 * context being the JSON path), Confluent's `{ error_code, message }`, or RFC 7807 `detail`/`title`.
 */
export function registryErrorMessages(body: unknown): string[] {
  if (typeof body !== 'object' || body === null) return [String(body)]
  const record = body as Record<string, unknown>
  const causes = Array.isArray(record.causes) ? record.causes : []
  const lines = causes
    .filter((c): c is Record<string, unknown> => typeof c === 'object' && c !== null)
    .map((c) => `${String(c.description)} at ${String(c.context)}`)
  if (lines.length > 0) return lines
  for (const key of ['message', 'detail', 'title']) if (typeof record[key] === 'string') return [record[key] as string]
  return [JSON.stringify(body)]
}
