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

const UNPARSABLE = '(unparsable URL)'
const PG_PROTOCOLS = new Set(['postgres:', 'postgresql:', 'socket:'])
const DEFAULT_PORTS: Readonly<Record<string, string>> = {
  'postgres:': '5432',
  'postgresql:': '5432',
  'socket:': '5432',
  'http:': '80',
  'https:': '443'
}

/**
 * A connection string or URL as logs and errors may show it: host, port and database (for other URLs, the path)
 * and nothing else. The user, the password and the query never appear, since pg takes a password from `user:pass@`,
 * from `?password=` and from other query parameters, and HTTP services take keys in the query. Every place that
 * shows an address calls this; what cannot be parsed is shown as `(unparsable URL)`, never as given.
 *
 *   postgres://u:secret@db:6543/x         → db:6543/x
 *   postgres://u@db/x?password=secret     → db:5432/x
 *   socket://u:secret@/run/pg?db=x        → /run/pg:5432/x
 *   http://key@qdrant:6333/?api-key=k     → http://qdrant:6333/
 */
export function redact(connectionString: string): string {
  const text = String(connectionString)
  // pg's own forms (pg-connection-string): a socket directory followed by an optional database name.
  if (text.startsWith('/')) {
    const [host, database] = text.split(' ')
    return `${host}:5432/${database ?? ''}`
  }
  // pg reads URLs with spaces and bare `%` after encoding them, and an empty host (`u@/db?host=…`) with a stand-in.
  const encoded = /\s|%[^a-f0-9]|%[a-f0-9][^a-f0-9]/i.test(text) ? encodeURI(text).replace(/%25(\d\d)/g, '%$1') : text
  const url = parseUrl(encoded) ?? parseUrl(encoded.replace('@/', '@___/'))
  // Only `scheme://…` (or pg's `socket:/dir`): in an opaque URL such as `postgres:secret` the path is no address.
  if (
    !url ||
    !(/^[a-z][a-z0-9+.-]*:\/\//i.test(encoded) || (url.protocol === 'socket:' && url.pathname.startsWith('/')))
  ) {
    return UNPARSABLE
  }
  const protocol = url.protocol
  const port = url.port || DEFAULT_PORTS[protocol] || ''
  if (!PG_PROTOCOLS.has(protocol)) return `${protocol}//${url.hostname}${port ? `:${port}` : ''}${url.pathname}`
  const query = url.searchParams
  if (protocol === 'socket:') return `${safeDecode(url.pathname)}:${port}/${query.get('db') ?? ''}`
  const host = query.get('host') || (url.hostname === '___' ? '' : safeDecode(url.hostname))
  return `${host}:${query.get('port') || port}/${safeDecode(url.pathname.slice(1))}`
}

function parseUrl(text: string): URL | undefined {
  try {
    return new URL(text)
  } catch {
    return undefined
  }
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}
