/**
 * The contract between `npm run bench` (bench/run.ts) and a benchmark module `bench/<name>.ts`. The harness checks
 * the services a benchmark needs before it runs, and prints the result as the last stdout line, so a caller can
 * always take `tail -n 1` and parse JSON.
 */

/** Services a benchmark can need, by the environment variable that points at them. */
export const Requirements = {
  KAFKA: 'KAFKA_BROKERS',
  POSTGRES: 'DATABASE_URL'
} as const
export type Requirement = (typeof Requirements)[keyof typeof Requirements]

/** One figure of a result: a number, a label, or null when it was not measured (e.g. a one-sided run). */
export type Figure = string | number | null

/** What a benchmark reports: its name, its figures, and `ratio` (ours / baseline; higher is better). */
export interface BenchResult {
  readonly bench: string
  readonly ratio: number | null
  readonly [figure: string]: Figure
}

/** What `bench/<name>.ts` exports. */
export interface BenchmarkModule {
  /** One line for the list `npm run bench` prints. */
  readonly description: string
  /** The benchmark's own `--help` text. */
  readonly usage: string
  readonly requires: readonly Requirement[]
  /** Runs the benchmark; progress goes to stderr, the result is returned (the harness prints it). */
  run(args: string[]): Promise<BenchResult>
}

export function isBenchmarkModule(value: unknown): value is BenchmarkModule {
  if (typeof value !== 'object' || value === null) return false
  const m = value as Partial<Record<keyof BenchmarkModule, unknown>>
  return (
    typeof m.description === 'string' &&
    typeof m.usage === 'string' &&
    Array.isArray(m.requires) &&
    typeof m.run === 'function'
  )
}

/** Progress line on stderr (stdout is reserved for the result). */
export function progress(bench: string, message: string): void {
  process.stderr.write(`[bench ${bench}] ${message}\n`)
}

/** Rounds to `digits` decimals (figures are for humans and diffs, not for more arithmetic). */
export function round(value: number, digits = 0): number {
  const f = 10 ** digits
  return Math.round(value * f) / f
}
