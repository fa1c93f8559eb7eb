import { type LogTarget, LogTargets, logTarget } from '../log/options.ts'
import { EmbeddedLogSource } from './embedded/index.ts'
import type { EmbeddedLogSourceOptions } from './embedded/types.ts'
import { KafkaSource } from './kafka/index.ts'
import type { KafkaSourceOptions } from './kafka/types.ts'

/** Options of both sources; each uses what applies to it (e.g. `brokers` only Kafka, `dataDir` only embedded). */
export interface LogSourceOptions extends KafkaSourceOptions, Omit<EmbeddedLogSourceOptions, keyof KafkaSourceOptions> {
  /** Default: Kafka when `brokers` is given or `KAFKA_BROKERS` is set, else the embedded log. */
  target?: LogTarget
}

/**
 * The source a topology names once and runs anywhere: a Kafka consumer group when brokers are configured, else the
 * embedded log under `SFM_DATA_DIR` (docs/EMBEDDED-LOG.md). Chosen when called — the runner builds topologies after
 * reading its environment (and the local stack's), so the choice follows the command's environment.
 */
export function logSource(options: LogSourceOptions): KafkaSource | EmbeddedLogSource {
  const { target, ...rest } = options
  if (logTarget({ target, brokers: options.brokers }) === LogTargets.KAFKA) {
    const { dataDir: _d, path: _p, pollIntervalMs: _i, retentionIntervalMs: _r, ...kafka } = rest
    return new KafkaSource(kafka)
  }
  const {
    brokers: _b,
    connection: _k,
    clientId: _c,
    maxWaitTime: _w,
    maxBytesPerPartition: _m,
    heartbeatInterval: _h,
    rebalanceTimeout: _t,
    reconnectBackoffMs: _rb,
    reconnectBackoffMaxMs: _rm,
    topicGoneMs: _tg,
    ...embedded
  } = rest
  return new EmbeddedLogSource(embedded)
}
