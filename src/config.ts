import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { ErrorCodes, FatalError } from './errors.ts'

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

/** Topic name with the optional `SFM_TOPIC_PREFIX` (isolates test runs and tenants on one cluster). */
export function topicName(name: string, env: NodeJS.ProcessEnv = process.env): string {
  return `${env.SFM_TOPIC_PREFIX ?? ''}${name}`
}

/** Variables `npm run stack -- up` records for the services it started. */
const STACK_VARIABLES = ['KAFKA_BROKERS', 'DATABASE_URL'] as const

/**
 * Fills KAFKA_BROKERS / DATABASE_URL, when unset, from the local dev stack's `stack.env` (`npm run stack -- up`
 * writes it to `.sfm-stack/`, or `$SFM_STACK_DIR`). Variables that are set always win. Returns what it filled in,
 * so the caller can say where the values came from.
 */
export function useLocalStack(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string[] {
  if (STACK_VARIABLES.every((name) => env[name])) return []
  const dir = env.SFM_STACK_DIR ? resolve(env.SFM_STACK_DIR) : join(cwd, '.sfm-stack')
  let text: string
  try {
    text = readFileSync(join(dir, 'stack.env'), 'utf8')
  } catch {
    return []
  }
  const filled: string[] = []
  for (const line of text.split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line.trim())
    if (!match) continue
    const [, name, value] = match
    if ((STACK_VARIABLES as readonly string[]).includes(name!) && !env[name!] && value) {
      env[name!] = value
      filled.push(name!)
    }
  }
  return filled
}
