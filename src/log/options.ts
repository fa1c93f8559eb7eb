import { join, resolve } from 'node:path'
import { ErrorCodes, FatalError } from '../errors.ts'
import { parseBrokers } from '../kafka/connection.ts'

/** The folder that holds every embedded store (log, PGlite), unless `SFM_DATA_DIR` says otherwise. */
export const DEFAULT_DATA_DIR = './.sfm-data'
/** The embedded log's file inside the data folder. */
export const LOG_FILE = 'log.sqlite'

/** Where records go when a Kafka client is asked for: a Kafka cluster, or the embedded log. */
export const LogTargets = {
  KAFKA: 'kafka',
  EMBEDDED: 'embedded'
} as const
export type LogTarget = (typeof LogTargets)[keyof typeof LogTargets]

/**
 * Kafka when brokers are given or `KAFKA_BROKERS` is set, else the embedded log: the same topology file runs on a
 * laptop with no servers and, unchanged, against a cluster.
 */
export function logTarget(
  options: { target?: LogTarget | undefined; brokers?: readonly string[] | undefined },
  env: NodeJS.ProcessEnv = process.env
): LogTarget {
  if (options.target !== undefined) {
    if (options.target !== LogTargets.KAFKA && options.target !== LogTargets.EMBEDDED) {
      throw new FatalError(`log target must be "kafka" or "embedded", got ${JSON.stringify(options.target)}`, {
        code: ErrorCodes.CONFIG
      })
    }
    return options.target
  }
  if (options.brokers !== undefined) return options.brokers.length > 0 ? LogTargets.KAFKA : LogTargets.EMBEDDED
  return parseBrokers(env.KAFKA_BROKERS).length > 0 ? LogTargets.KAFKA : LogTargets.EMBEDDED
}

/** The data folder: the option, else `SFM_DATA_DIR`, else `./.sfm-data`, as an absolute path. */
export function dataDir(option?: string, env: NodeJS.ProcessEnv = process.env): string {
  const dir = option || env.SFM_DATA_DIR || DEFAULT_DATA_DIR
  return resolve(dir)
}

/** The embedded log file: `<data dir>/log.sqlite`. */
export function embeddedLogPath(options: { dataDir?: string | undefined } = {}, env = process.env): string {
  return join(dataDir(options.dataDir, env), LOG_FILE)
}

/**
 * `PRAGMA synchronous` for the log. FULL (default) syncs the WAL on every commit: an acknowledged append survives a
 * power cut, as `acks=all` promises on a cluster. NORMAL survives a crash of any process (kill -9) but may lose the
 * last commits on power loss; it is faster for bulk loads. `SFM_LOG_SYNC=normal` chooses it.
 */
export const SyncModes = { FULL: 'FULL', NORMAL: 'NORMAL' } as const
export type SyncMode = (typeof SyncModes)[keyof typeof SyncModes]

export function syncMode(option?: string, env: NodeJS.ProcessEnv = process.env): SyncMode {
  const value = (option ?? env.SFM_LOG_SYNC ?? 'full').toUpperCase()
  if (value !== SyncModes.FULL && value !== SyncModes.NORMAL) {
    throw new FatalError(`SFM_LOG_SYNC must be "full" or "normal", got ${JSON.stringify(option ?? env.SFM_LOG_SYNC)}`, {
      code: ErrorCodes.CONFIG
    })
  }
  return value
}
