import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join, relative, resolve } from 'node:path'
import { ErrorCodes, errorMessage, FatalError } from './errors.ts'
import { redact } from './logger.ts'

/**
 * Reads a required environment variable; a missing one is a configuration error that names the variable and says
 * what it is for, so `npm start` can tell an operator exactly what to set.
 */
export function requireEnv(name: string, what: string, env: NodeJS.ProcessEnv = process.env): string {
  const value = env[name]
  if (value === undefined || value.trim() === '') {
    throw new FatalError(`${name} is not set: ${what}`, { code: ErrorCodes.CONFIG, details: { variable: name } })
  }
  return value
}

export function envInt(name: string, fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const value = env[name]
  if (value === undefined || value === '') return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0) {
    throw new FatalError(`${name} must be a whole number ≥ 0, got "${value}"`, { code: ErrorCodes.CONFIG })
  }
  return n
}

/**
 * The one topic prefix rule of every CLI and topology: prefix `P` names `P.memory.events` (a prefix that already ends
 * in `.` gets no second one), so `SFM_TOPIC_PREFIX=t1` and `npm run topics -- apply --prefix t1` mean the same topics.
 */
export function prefixTopic(prefix: string, name: string): string {
  if (!prefix) return name
  return prefix.endsWith('.') ? `${prefix}${name}` : `${prefix}.${name}`
}

/** Topic name with the optional `SFM_TOPIC_PREFIX` (isolates test runs and tenants on one cluster). */
export function topicName(name: string, env: NodeJS.ProcessEnv = process.env): string {
  return prefixTopic(env.SFM_TOPIC_PREFIX ?? '', name)
}

/** Variables `npm run stack -- up` records for the services it started. */
const STACK_VARIABLES = ['KAFKA_BROKERS', 'DATABASE_URL'] as const

/** What a command runs against, and why: the first line every CLI prints. */
export interface StackChoice {
  /** Variables filled from the running local stack's `stack.env`. */
  filled: string[]
  /** `Kafka <brokers> (<where from>)`, or the embedded log's file. */
  log: string
  /** `PostgreSQL <host:port/db> (<where from>)`, or the embedded PGlite folder. */
  database: string
  /** Why the embedded default is used where a variable is unset ('' when the local stack filled them). */
  reason: string
  /** Where KAFKA_BROKERS and DATABASE_URL came from: the variable's name, or `NAME from <stack.env>`. */
  origins: Record<string, string>
}

export interface ChooseStackOptions {
  /** `--data-dir` of the command line: the embedded stack in that folder, the local stack is not read. */
  dataDir?: string | undefined
  cwd?: string
  /** How long a service of the local stack may take to accept a connection (default 1 s). */
  probeTimeoutMs?: number
}

/** Whether something accepts TCP connections at host:port within `timeoutMs`. */
export async function acceptsConnections(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return (await connectProblem(host, port, timeoutMs)) === undefined
}

/** Why nothing accepts a TCP connection at host:port within `timeoutMs` (`connection refused`…), or undefined. */
export function connectProblem(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((done) => {
    const socket = connect({ host, port })
    const finish = (problem: string | undefined) => {
      socket.destroy()
      done(problem)
    }
    socket.setTimeout(timeoutMs, () => finish(`no answer within ${timeoutMs / 1000} s`))
    socket.once('connect', () => finish(undefined))
    socket.once('error', (error: NodeJS.ErrnoException) => {
      const code = error.code ?? ''
      if (code === 'ECONNREFUSED') finish('connection refused')
      else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') finish(`host ${host} not found`)
      else if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') finish('host unreachable')
      else finish(code || errorMessage(error))
    })
  })
}

/** The servers a command may need, by the variable that names them. */
const SERVICES = [
  { name: 'KAFKA_BROKERS', what: 'Kafka' },
  { name: 'DATABASE_URL', what: 'PostgreSQL' },
  { name: 'VECTOR_DATABASE_URL', what: 'the pgvector PostgreSQL' },
  { name: 'QDRANT_URL', what: 'Qdrant' }
] as const
export type ServiceVariable = (typeof SERVICES)[number]['name']

/**
 * Checks that the servers the set variables name accept connections (Kafka: any one broker), before a command
 * starts work that would otherwise retry against them for a long while and then fail with a library's dump.
 * Returns one line per unreachable server: what, where (host:port, database), from which variable or `stack.env`,
 * why, and what to do; [] when all answer. A server that answers but refuses us (TLS, login) is left to the
 * client, which names that precisely.
 */
export async function unreachableServers(
  env: NodeJS.ProcessEnv,
  options: { names?: readonly ServiceVariable[]; origins?: Record<string, string>; timeoutMs?: number } = {}
): Promise<string[]> {
  const timeoutMs = options.timeoutMs ?? 3000
  const wanted = SERVICES.filter((s) => (options.names ?? SERVICES.map((x) => x.name)).includes(s.name))
  const checks = wanted
    .filter(({ name }) => env[name])
    .map(async ({ name, what }) => {
      const value = env[name]!
      const addresses = serverAddresses(name, value)
      if (addresses.length === 0) return undefined
      const problems = await Promise.all(addresses.map((a) => connectProblem(a.host, a.port, timeoutMs)))
      if (problems.some((p) => p === undefined)) return undefined
      const where = name === 'KAFKA_BROKERS' ? value : redact(value)
      const origin = options.origins?.[name] ?? name
      const fix = origin.includes('stack.env')
        ? 'start the local stack (npm run stack -- up)'
        : `start it, or fix ${name}${name === 'KAFKA_BROKERS' || name === 'DATABASE_URL' ? ` (unset it for the embedded stack)` : ''}`
      return `cannot reach ${what} at ${where} (${origin}): ${problems[0]}; ${fix}`
    })
  return (await Promise.all(checks)).filter((line): line is string => line !== undefined)
}

/** host:port pairs of a variable: every broker of KAFKA_BROKERS, the host of a URL (default port per scheme). */
function serverAddresses(name: string, value: string): { host: string; port: number }[] {
  if (name === 'KAFKA_BROKERS') {
    return value
      .split(',')
      .map((b) => stackAddress(name, b))
      .filter((a): a is { host: string; port: number } => a !== undefined)
  }
  try {
    const url = new URL(value)
    const defaults: Record<string, number> = { 'http:': 80, 'https:': 443 }
    const port = Number(url.port || (defaults[url.protocol] ?? 5432))
    return url.hostname ? [{ host: url.hostname.replace(/^\[|\]$/g, ''), port }] : []
  } catch {
    return []
  }
}

/** host and port of the first `host:port` of KAFKA_BROKERS, or of a postgres:// URL (default port 5432). */
function stackAddress(name: string, value: string): { host: string; port: number } | undefined {
  try {
    if (name === 'DATABASE_URL') {
      const url = new URL(value)
      return { host: url.hostname, port: Number(url.port || 5432) }
    }
    const first = value.split(',')[0]!.trim()
    const colon = first.lastIndexOf(':')
    const port = Number(first.slice(colon + 1))
    return colon > 0 && Number.isInteger(port) ? { host: first.slice(0, colon), port } : undefined
  } catch {
    return undefined
  }
}

/**
 * Picks what a command runs against. Variables that are set always win. When KAFKA_BROKERS or DATABASE_URL is unset,
 * the local dev stack's `stack.env` (`npm run stack -- up` writes it to `.sfm-stack/`, or `$SFM_STACK_DIR`) fills
 * them, but only while that stack runs: `down` leaves the file behind, and a stopped stack must never win over the
 * embedded default. An explicit `--data-dir` means the embedded stack: the file is not read at all.
 */
export async function chooseStack(
  env: NodeJS.ProcessEnv = process.env,
  options: ChooseStackOptions = {}
): Promise<StackChoice> {
  const cwd = options.cwd ?? process.cwd()
  const given = new Set(STACK_VARIABLES.filter((name) => env[name]))
  const dir = env.SFM_STACK_DIR ? resolve(env.SFM_STACK_DIR) : join(cwd, '.sfm-stack')
  const file = join(dir, 'stack.env')
  const shown = relative(cwd, file).startsWith('..') ? file : relative(cwd, file)
  let reason = ''
  const filled: string[] = []
  if (given.size < STACK_VARIABLES.length) {
    if (options.dataDir !== undefined) {
      reason = '--data-dir given, so no local stack is used'
    } else {
      const values = readStackEnv(file)
      const wanted = STACK_VARIABLES.filter((name) => !given.has(name) && values.get(name))
      if (values.size === 0) {
        reason = 'no server configured (set the variable, or start a local stack with npm run stack -- up)'
      } else {
        const probes = await Promise.all(
          wanted.map((name) => {
            const address = stackAddress(name, values.get(name)!)
            return address === undefined
              ? false
              : acceptsConnections(address.host, address.port, options.probeTimeoutMs ?? 1000)
          })
        )
        if (probes.every(Boolean)) {
          for (const name of wanted) {
            env[name] = values.get(name)
            filled.push(name)
          }
        } else {
          reason = `the local stack is stopped (${shown} is left from an earlier run; npm run stack -- up starts it)`
        }
      }
    }
  }
  const from = (name: string) => (filled.includes(name) ? `${name} from ${shown}, the running local stack` : name)
  const data = resolve(options.dataDir ?? (env.SFM_DATA_DIR || './.sfm-data'))
  return {
    filled,
    log: env.KAFKA_BROKERS
      ? `Kafka ${env.KAFKA_BROKERS} (${from('KAFKA_BROKERS')})`
      : `the embedded log ${join(data, 'log.sqlite')}`,
    database: env.DATABASE_URL
      ? `PostgreSQL ${redact(env.DATABASE_URL)} (${from('DATABASE_URL')})`
      : `PGlite ${join(data, 'pg')}`,
    reason,
    origins: Object.fromEntries(
      STACK_VARIABLES.map((name) => [name, filled.includes(name) ? `${name} from ${shown}` : name])
    )
  }
}

/** The one line a command prints first: what it runs against and why (`parts`: which of the two it uses). */
export function describeStack(choice: StackChoice, parts: { log?: boolean; database?: boolean } = {}): string {
  const used = [...(parts.log === false ? [] : [choice.log]), ...(parts.database === false ? [] : [choice.database])]
  // The reason only explains a part shown that is embedded (its variable unset).
  const embedded = used.some((part) => part.startsWith('the embedded log') || part.startsWith('PGlite'))
  return `using ${used.join(' and ')}${embedded && choice.reason ? `: ${choice.reason}` : ''}`
}

function readStackEnv(file: string): Map<string, string> {
  const values = new Map<string, string>()
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    return values
  }
  for (const line of text.split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line.trim())
    if (match && (STACK_VARIABLES as readonly string[]).includes(match[1]!) && match[2]) values.set(match[1]!, match[2])
  }
  return values
}
