import { readDateAndTime } from '../date-time.ts'

/** What every command line tool of the project shares: exit codes, usage errors, and where its lines go. */
export const ExitCodes = { OK: 0, FAILED: 1, USAGE: 2 } as const

/** A mistake in the command line: printed with a pointer to `--help`, exit code 2. */
export class UsageError extends Error {}

export interface Io {
  out: (line: string) => void
  err: (line: string) => void
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
