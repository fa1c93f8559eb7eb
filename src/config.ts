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
