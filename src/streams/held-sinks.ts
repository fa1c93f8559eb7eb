/** A branch that has failed on the same error, without a write succeeding, for at least the threshold. */
export interface HeldSink {
  branch: string
  /** The error's message (the same one since `seconds` ago). */
  error: string
  seconds: number
}

/** Default time a branch may retry the same error before it counts as held: 60 s. */
export const DEFAULT_HELD_AFTER_MS = 60_000

/**
 * Tracks, per sink branch, how long it has been retrying the same error: the first failure of a streak starts the
 * clock, a different error restarts it, a write that settles any item ends it. A branch past the threshold is "held": a
 * retriable error that does not heal (a missing path, a dropped table) shows up in the status line, the
 * `sfm_sink_held_seconds` metric and the SfmSinkHeld alert instead of only as a growing retry count.
 */
export class HeldSinks {
  readonly #since = new Map<string, { at: number; error: string }>()
  readonly #afterMs: number
  readonly #now: () => number

  constructor(afterMs = DEFAULT_HELD_AFTER_MS, now: () => number = () => performance.now()) {
    this.#afterMs = afterMs
    this.#now = now
  }

  failed(branch: string, error: string): void {
    const current = this.#since.get(branch)
    if (current === undefined || current.error !== error) this.#since.set(branch, { at: this.#now(), error })
  }

  progressed(branch: string): void {
    this.#since.delete(branch)
  }

  /** Seconds each failing branch has retried its current error (branches that write are absent). */
  seconds(): Map<string, number> {
    const now = this.#now()
    return new Map([...this.#since].map(([branch, { at }]) => [branch, (now - at) / 1000]))
  }

  /** The branches past the threshold. */
  held(): HeldSink[] {
    const now = this.#now()
    const out: HeldSink[] = []
    for (const [branch, { at, error }] of this.#since) {
      if (now - at >= this.#afterMs) out.push({ branch, error, seconds: (now - at) / 1000 })
    }
    return out
  }
}

/** `45s`, `2m10s`, `1h05m`. */
export function formatHeldFor(seconds: number): string {
  const s = Math.floor(seconds)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
}

/** ` held: vectors — ENOENT … for 2m10s` (one clause per held branch), or '' when none is held. */
export function formatHeld(held: readonly HeldSink[], maxErrorChars = 120): string {
  return held
    .map((h) => {
      const error = h.error.length > maxErrorChars ? `${h.error.slice(0, maxErrorChars - 1)}…` : h.error
      return ` held: ${h.branch} — ${error} for ${formatHeldFor(h.seconds)}`
    })
    .join('')
}
