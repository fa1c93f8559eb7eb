export interface BackoffOptions {
  /** First delay in milliseconds. */
  initialDelayMs: number
  /** Upper bound of one delay. */
  maxDelayMs: number
  /** Growth factor per attempt. */
  multiplier: number
  /** Give up after this many attempts (Infinity: retry until the runtime stops). */
  maxAttempts: number
}

export const defaultBackoff = {
  initialDelayMs: 100,
  maxDelayMs: 10_000,
  multiplier: 2,
  maxAttempts: Number.POSITIVE_INFINITY
} satisfies BackoffOptions

/** Delay before attempt `attempt + 1` (attempt counts from 1), with full jitter on the upper half. */
export function backoffDelay(options: BackoffOptions, attempt: number): number {
  const base = Math.min(options.maxDelayMs, options.initialDelayMs * options.multiplier ** Math.max(0, attempt - 1))
  return Math.round(base / 2 + Math.random() * (base / 2))
}

/** Sleeps `ms`, or less if `signal` aborts (then resolves false). */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false)
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer)
      resolve(false)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve(true)
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

export interface RetryHooks {
  signal?: AbortSignal
  /** Called before each wait: the error, the attempt that failed (from 1) and the delay chosen. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void
}

/** Thrown by the retry loop when the signal aborted before or while waiting: the work was abandoned, not done. */
export class AbandonedError extends Error {
  constructor(cause: unknown) {
    super('abandoned: the runtime is shutting down', { cause })
    this.name = 'AbandonedError'
  }
}

/** An attempt's verdict that it failed in a way waiting can heal: the loop waits with backoff, then tries again. */
export class RetryLater {
  readonly error: unknown
  constructor(error: unknown) {
    this.error = error
  }
}

/**
 * The one retry loop (the branch writer, the dead-letter writer and the `retryStep` operator all use it). Calls
 * `attempt` (counting from 1) until it returns a result; when it returns `RetryLater`, waits with exponential backoff
 * and calls it again. After `maxAttempts` the last error is thrown. An abort (of `hooks.signal`) before or while
 * waiting throws AbandonedError. Errors `attempt` throws are not retried: they pass straight through.
 */
export async function retryWithBackoff<R>(
  attempt: (attempt: number) => Promise<R | RetryLater>,
  options: BackoffOptions = defaultBackoff,
  hooks: RetryHooks = {}
): Promise<R> {
  for (let n = 1; ; n++) {
    const outcome = await attempt(n)
    if (!(outcome instanceof RetryLater)) return outcome
    if (n >= options.maxAttempts) throw outcome.error
    if (hooks.signal?.aborted) throw new AbandonedError(outcome.error)
    const delay = backoffDelay(options, n)
    hooks.onRetry?.(outcome.error, n, delay)
    if (!(await sleep(delay, hooks.signal))) throw new AbandonedError(outcome.error)
  }
}

/**
 * Runs `task` until it succeeds, waiting with exponential backoff after each error that `shouldRetry` accepts.
 * Other errors, and the last one after `maxAttempts`, are thrown. An abort while waiting throws AbandonedError.
 */
export function retrying<R>(
  task: (attempt: number) => Promise<R>,
  shouldRetry: (error: unknown) => boolean,
  options: BackoffOptions = defaultBackoff,
  hooks: RetryHooks = {}
): Promise<R> {
  return retryWithBackoff(
    async (attempt) => {
      try {
        return await task(attempt)
      } catch (error) {
        if (!shouldRetry(error)) throw error
        return new RetryLater(error)
      }
    },
    options,
    hooks
  )
}
