import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join, relative, resolve } from 'node:path'
import { ErrorCodes, FatalError } from './errors.ts'
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
  /** Why the embedded default is used, when it is for either ('' otherwise). */
  reason: string
}

export interface ChooseStackOptions {
  /** `--data-dir` of the command line: the embedded stack in that folder, the local stack is not read. */
  dataDir?: string | undefined
  cwd?: string
  /** How long a service of the local stack may take to accept a connection (default 1 s). */
  probeTimeoutMs?: number
}

/** Whether something accepts TCP connections at host:port within `timeoutMs`. */
export function acceptsConnections(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host, port })
    const finish = (ok: boolean) => {
      socket.destroy()
      done(ok)
    }
    socket.setTimeout(timeoutMs, () => finish(false))
    socket.once('connect', () => finish(true))
    socket.once('error', () => finish(false))
  })
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
        reason = `no server configured (set KAFKA_BROKERS / DATABASE_URL, or start one with npm run stack -- up)`
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
    reason: env.KAFKA_BROKERS && env.DATABASE_URL ? '' : reason
  }
}

/** The one line a command prints first: what it runs against and why (`parts`: which of the two it uses). */
export function describeStack(choice: StackChoice, parts: { log?: boolean; database?: boolean } = {}): string {
  const used = [...(parts.log === false ? [] : [choice.log]), ...(parts.database === false ? [] : [choice.database])]
  return `using ${used.join(' and ')}${choice.reason ? `: ${choice.reason}` : ''}`
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
