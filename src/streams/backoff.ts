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

/** Thrown by `retrying` when the signal aborted while waiting: the work was abandoned, not done. */
export class AbandonedError extends Error {
  constructor(cause: unknown) {
    super('abandoned: the runtime is shutting down', { cause })
    this.name = 'AbandonedError'
  }
}

/**
 * Runs `task` until it succeeds, waiting with exponential backoff after each error that `shouldRetry` accepts.
 * Other errors, and the last one after `maxAttempts`, are thrown. An abort while waiting throws AbandonedError.
 */
export async function retrying<R>(
  task: (attempt: number) => Promise<R>,
  shouldRetry: (error: unknown) => boolean,
  options: BackoffOptions = defaultBackoff,
  hooks: RetryHooks = {}
): Promise<R> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await task(attempt)
    } catch (error) {
      if (!shouldRetry(error) || attempt >= options.maxAttempts) throw error
      if (hooks.signal?.aborted) throw new AbandonedError(error)
      const delay = backoffDelay(options, attempt)
      hooks.onRetry?.(error, attempt, delay)
      if (!(await sleep(delay, hooks.signal))) throw new AbandonedError(error)
    }
  }
}
