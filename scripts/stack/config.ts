import { homedir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { FatalError } from '../../src/errors.ts'

/** The repository root: scripts/stack/ is two levels below it. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

export const stackDefaults = {
  /**
   * Pinned rather than "newest on Maven Central" so every machine runs the same broker; bump it here (or set
   * SFM_KAFKA_VERSION) to move. Kafka 4.x is KRaft-only and needs Java 17+.
   */
  kafkaVersion: '4.4.0',
  /** The log4j 2 binding for slf4j 1.x: kafka_2.13's pom leaves it out, and without it the broker logs nothing. */
  log4jVersion: '2.25.5',
  kafkaHeap: '512m',
  /**
   * Debezium JDBC sink for `up --connect` (io.debezium:debezium-connector-jdbc, the `plugin` tar.gz). The 3.x line
   * is built on Kafka 4.x clients (3.6.0.Final on 4.3.0). docker-compose.dev.yml (quay.io/debezium/connect) and
   * deploy/strimzi/kafka-connect.yaml use the same version; test/deploy checks they agree.
   */
  debeziumVersion: '3.6.0.Final',
  /** Connect scans plugins and joins its group before the REST API answers: slower to start than the broker. */
  connectReadyTimeoutMs: 120_000,
  /** Only one voter and one broker, so every internal topic gets replication factor 1 and few partitions. */
  internalTopicPartitions: 4,
  readyTimeoutMs: 90_000,
  stopTimeoutMs: 30_000,
  lockTimeoutMs: 180_000,
  databaseName: 'sfm',
  /** The superuser initdb creates; its password is generated into `<state dir>/pg-password` (scripts/stack/postgres.ts). */
  databaseUser: 'postgres',
  host: '127.0.0.1'
} as const

export type StackDefaults = typeof stackDefaults

/** `<repo>/.sfm-stack` unless SFM_STACK_DIR says otherwise. */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.SFM_STACK_DIR
  return fromEnv !== undefined && fromEnv !== '' ? resolve(fromEnv) : join(REPO_ROOT, '.sfm-stack')
}

/** Where resolved Kafka jars are kept between stacks and state dirs: `~/.cache/sfm-stack` (or XDG_CACHE_HOME). */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SFM_STACK_CACHE !== undefined && env.SFM_STACK_CACHE !== '') return resolve(env.SFM_STACK_CACHE)
  const xdg = env.XDG_CACHE_HOME
  return join(xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.cache'), 'sfm-stack')
}

export function kafkaVersion(env: NodeJS.ProcessEnv = process.env): string {
  const version = env.SFM_KAFKA_VERSION ?? stackDefaults.kafkaVersion
  if (!/^4\.\d+\.\d+$/.test(version)) {
    throw new FatalError(`SFM_KAFKA_VERSION must be a Kafka 4.x release such as 4.4.0 (KRaft only), got "${version}"`)
  }
  return version
}

/** Parses a port from the environment; undefined when unset. */
export function portFromEnv(name: string, env: NodeJS.ProcessEnv = process.env): number | undefined {
  const raw = env[name]
  if (raw === undefined || raw === '') return undefined
  const port = Number(raw)
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new FatalError(`${name} must be a TCP port between 1 and 65535, got "${raw}"`)
  }
  return port
}
