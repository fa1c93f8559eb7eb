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
