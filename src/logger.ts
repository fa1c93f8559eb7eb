export const LogLevels = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const
export type LogLevel = keyof typeof LogLevels

export interface Logger {
  debug(message: string): void
  info(message: string): void
  warn(message: string): void
  error(message: string): void
}

/**
 * Plain one-line logs on stderr (stdout stays free for data a command prints). Callers never pass secrets or
 * message bodies; connection strings go through `redact` first.
 */
export function createLogger(name: string, level: LogLevel = (process.env.LOG_LEVEL as LogLevel) || 'info'): Logger {
  const threshold = LogLevels[level] ?? LogLevels.info
  const write = (l: LogLevel, message: string) => {
    if (LogLevels[l] < threshold) return
    process.stderr.write(`${new Date().toISOString()} ${l.toUpperCase().padEnd(5)} [${name}] ${message}\n`)
  }
  return {
    debug: (m) => write('debug', m),
    info: (m) => write('info', m),
    warn: (m) => write('warn', m),
    error: (m) => write('error', m)
  }
}

/** Hides the password of a URL-style connection string. */
export function redact(connectionString: string): string {
  try {
    const url = new URL(connectionString)
    if (url.password) url.password = '***'
    return url.toString()
  } catch {
    return connectionString.replace(/:\/\/([^:@/]+):[^@/]*@/, '://$1:***@')
  }
}
