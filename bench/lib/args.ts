import { parseArgs } from 'node:util'
import { ErrorCodes, errorMessage, FatalError } from '../../src/errors.ts'

/** A benchmark's parsed `--name value` options and a checked integer reader over them. */
export interface BenchArgs {
  readonly values: Readonly<Record<string, string | boolean | undefined>>
  /** `--name` as an integer in [min, max], or `fallback` when absent; anything else is a usage error (exit 2). */
  int(name: string, fallback: number, min: number, max: number): number
}

/**
 * Parses a benchmark's arguments (every option takes a string value). Errors are FatalErrors with code CONFIG,
 * which the harness (bench/run.ts) reports as a usage error, naming the benchmark and the option.
 */
export function parseBenchArgs(bench: string, args: string[], names: readonly string[]): BenchArgs {
  let values: Record<string, string | boolean | undefined>
  try {
    values = parseArgs({
      args,
      options: Object.fromEntries(names.map((name) => [name, { type: 'string' as const }]))
    }).values
  } catch (error) {
    throw new FatalError(`bench ${bench}: ${errorMessage(error)} (see --help)`, { code: ErrorCodes.CONFIG })
  }
  return {
    values,
    int(name, fallback, min, max) {
      const raw = values[name]
      if (raw === undefined) return fallback
      const n = Number(raw)
      if (!Number.isInteger(n) || n < min || n > max) {
        throw new FatalError(`bench ${bench}: --${name} must be an integer from ${min} to ${max}, got "${raw}"`, {
          code: ErrorCodes.CONFIG
        })
      }
      return n
    }
  }
}
