import { ErrorCodes, FatalError } from '../../errors.ts'
import type { OutboxSourceOptions } from './types.ts'

export const defaultOutboxSourceOptions = {
  table: 'sfm_outbox',
  channel: 'sfm_outbox',
  batchSize: 1000,
  pollIntervalMs: 1000,
  maxClaimMs: 1000
} satisfies Partial<OutboxSourceOptions>

export type ResolvedOutboxSourceOptions = Required<OutboxSourceOptions> & {
  /** The table as a quoted SQL identifier. */
  readonly tableSql: string
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/

const configError = (message: string) => new FatalError(`outbox source: ${message}`, { code: ErrorCodes.CONFIG })

/** Fills defaults from the environment and checks everything; throws FatalError (SFM_CONFIG) naming what is wrong. */
export function resolveOutboxSourceOptions(
  options: OutboxSourceOptions,
  env: NodeJS.ProcessEnv = process.env
): ResolvedOutboxSourceOptions {
  const connectionString = options.connectionString ?? env.SFM_OUTBOX_URL
  if (!connectionString) {
    throw configError('no database: set SFM_OUTBOX_URL=postgres://… (the database the app writes its outbox to)')
  }
  if (!/^postgres(ql)?:\/\//.test(connectionString)) {
    throw configError('SFM_OUTBOX_URL must be a postgres:// URL')
  }
  const resolved = { ...defaultOutboxSourceOptions, ...options, connectionString }
  const parts = resolved.table.split('.')
  if (parts.length > 2 || !parts.every((p) => IDENTIFIER.test(p))) {
    throw configError(`table must be name or schema.name of plain identifiers, got ${JSON.stringify(resolved.table)}`)
  }
  if (!IDENTIFIER.test(resolved.channel)) {
    throw configError(`channel must be a plain identifier, got ${JSON.stringify(resolved.channel)}`)
  }
  for (const key of ['batchSize', 'pollIntervalMs', 'maxClaimMs'] as const) {
    const value = resolved[key]
    if (!Number.isInteger(value) || value < 1) throw configError(`${key} must be a positive integer, got ${value}`)
  }
  return { ...resolved, tableSql: parts.map((p) => `"${p}"`).join('.') }
}
