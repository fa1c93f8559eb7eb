import { ErrorCodes, FatalError } from '../../errors.ts'
import { embeddedLogPath } from '../../log/options.ts'
import { parseBoolean } from '../kafka/options.ts'
import type { EmbeddedLogSourceOptions } from './types.ts'

export const defaultEmbeddedLogSourceOptions = {
  highWaterMark: 1024,
  maxBytes: 16 * 1024 * 1024,
  pollIntervalMs: 25,
  sessionTimeout: 10_000,
  lagIntervalMs: 5_000,
  retentionIntervalMs: 5 * 60_000
} satisfies Partial<EmbeddedLogSourceOptions>

export type ResolvedEmbeddedLogSourceOptions = Required<Omit<EmbeddedLogSourceOptions, 'dataDir'>>

/** Fills defaults from the environment and checks everything; throws FatalError naming what is wrong. */
export function resolveEmbeddedLogSourceOptions(
  options: EmbeddedLogSourceOptions,
  env: NodeJS.ProcessEnv = process.env
): ResolvedEmbeddedLogSourceOptions {
  if (!Array.isArray(options.topics) || options.topics.length === 0 || options.topics.some((t) => !t)) {
    throw new FatalError('embedded log source: topics must name at least one topic', { code: ErrorCodes.CONFIG })
  }
  if (!options.groupId) {
    throw new FatalError('embedded log source: groupId is required', { code: ErrorCodes.CONFIG })
  }
  const { dataDir, ...rest } = options
  const resolved: ResolvedEmbeddedLogSourceOptions = {
    ...defaultEmbeddedLogSourceOptions,
    ...rest,
    topics: [...new Set(options.topics)],
    path: options.path ?? embeddedLogPath({ dataDir }, env),
    drainOldEvents: options.drainOldEvents ?? parseBoolean(env.DRAIN_OLD_EVENTS, 'DRAIN_OLD_EVENTS', true)
  }
  for (const key of ['highWaterMark', 'maxBytes', 'pollIntervalMs', 'sessionTimeout'] as const) {
    const value = resolved[key]
    if (!Number.isInteger(value) || value < 1) {
      throw new FatalError(`embedded log source: ${key} must be a positive integer, got ${value}`, {
        code: ErrorCodes.CONFIG
      })
    }
  }
  for (const key of ['lagIntervalMs', 'retentionIntervalMs'] as const) {
    const value = resolved[key]
    if (!Number.isInteger(value) || value < 0) {
      throw new FatalError(`embedded log source: ${key} must be an integer ≥ 0, got ${value}`, {
        code: ErrorCodes.CONFIG
      })
    }
  }
  return resolved
}
