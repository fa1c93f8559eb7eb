import { readDateAndTime } from '../date-time.ts'
import { describeError } from '../errors.ts'

/** What every command line tool of the project shares: exit codes, usage errors, and where its lines go. */
export const ExitCodes = { OK: 0, FAILED: 1, USAGE: 2 } as const

/** A mistake in the command line: printed with a pointer to `--help`, exit code 2. */
export class UsageError extends Error {}

export interface Io {
  out: (line: string) => void
  err: (line: string) => void
}

/**
 * Reads a command line the way every tool does: a mistake prints `<tool>: <why>` and the pointer to `--help`
 * (exit 2), `--help` prints the usage (exit 0). Returns the parsed options, or the exit code to end with.
 */
export function parseCommandLine<T extends object>(
  tool: string,
  usage: string,
  io: Io,
  parse: () => T
): Exclude<T, { help: true }> | number {
  let parsed: T
  try {
    parsed = parse()
  } catch (error) {
    io.err(`${tool}: ${describeError(error)}`)
    io.err('Run with --help for usage.')
    return ExitCodes.USAGE
  }
  if ((parsed as { help?: unknown }).help === true) {
    io.out(usage)
    return ExitCodes.OK
  }
  // Sound: a parse result whose help is true has returned above.
  return parsed as Exclude<T, { help: true }>
}

/** Data on stdout, messages on stderr. */
export const stdio: Io = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`)
}

/**
 * Ends the process quietly when whoever reads stdout has gone (`… | head -3`): a write then fails with EPIPE, and
 * without a handler Node throws it as an unhandled 'error' event with a stack trace. The exit code stays what the
 * command had set so far; any other stdout error still throws.
 */
export function endQuietlyWhenStdoutCloses(): void {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error
    process.exit(process.exitCode ?? ExitCodes.OK)
  })
}

/**
 * An RFC 3339 time (`2026-12-07T18:00:00Z`, `…+01:00`, with or without a fraction) as ms since the epoch, or
 * undefined for anything else (a date alone, no zone, an impossible day).
 */
export function rfc3339Ms(value: string): number | undefined {
  if (!/^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.test(value)) return undefined
  if (!readDateAndTime(value)) return undefined
  const ms = Date.parse(value.replace(' ', 'T'))
  return Number.isNaN(ms) ? undefined : ms
}
