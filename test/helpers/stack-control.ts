import { defaultStateDir } from '../../scripts/stack/config.ts'
import { configuredKafkaPorts, runningKafkaPid } from '../../scripts/stack/kafka.ts'
import { runningPostgres, startPostgres, stopPostgres, waitForPostgres } from '../../scripts/stack/postgres.ts'
import { isAlive, sleep } from '../../scripts/stack/proc.ts'
import { requirePostgresBin } from '../../scripts/stack/requirements.ts'
import { up } from '../../scripts/stack/stack.ts'

export interface PostgresControl {
  stop(): Promise<void>
  start(): Promise<void>
}

/**
 * Stops and starts the PostgreSQL server of the stack the tests run against (the one `npm test` or
 * `npm run stack -- up` started), for outage tests. Undefined, with the reason, when DATABASE_URL points elsewhere.
 */
export async function postgresControl(): Promise<PostgresControl | string> {
  const stateDir = process.env.SFM_STACK_DIR ?? defaultStateDir()
  const bin = await requirePostgresBin().catch(() => undefined)
  if (!bin) return 'PostgreSQL binaries not found'
  const running = await runningPostgres(stateDir, bin)
  const port = Number(new URL(process.env.DATABASE_URL ?? 'postgres://x:1/').port)
  if (!running || running.port !== port) return `DATABASE_URL is not the PostgreSQL of the stack in ${stateDir}`
  const log = () => {}
  return {
    async stop() {
      await stopPostgres(stateDir, bin, log)
    },
    async start() {
      await startPostgres({ stateDir, bin, port, log })
      await waitForPostgres(stateDir, port, 60_000)
    }
  }
}

export interface KafkaControl {
  /** kill -9 the broker and wait until it is gone. */
  kill(): Promise<void>
  /** Starts it again as `npm run stack -- up` does (same ports), once it answers metadata requests. */
  start(): Promise<void>
}

/**
 * Kills and restarts the Kafka broker of the stack the tests run against, for broker outage tests. A string (the
 * reason to skip) when KAFKA_BROKERS is not that stack's broker: a shared stack is never touched.
 */
export async function kafkaControl(): Promise<KafkaControl | string> {
  const stateDir = process.env.SFM_STACK_DIR ?? defaultStateDir()
  const pid = await runningKafkaPid(stateDir)
  const ports = await configuredKafkaPorts(stateDir)
  const brokers = (process.env.KAFKA_BROKERS ?? '').split(',')
  if (pid === undefined || ports === undefined || brokers.length !== 1 || !brokers[0]?.endsWith(`:${ports.port}`)) {
    return `KAFKA_BROKERS is not the broker of the stack in ${stateDir} (SFM_STACK_DIR): the test kills it`
  }
  return {
    async kill() {
      const running = await runningKafkaPid(stateDir)
      if (running === undefined) return
      process.kill(running, 'SIGKILL')
      while (isAlive(running)) await sleep(50)
    },
    async start() {
      await up({ stateDir, kafkaPort: ports.port, kafkaControllerPort: ports.controllerPort, log: () => {} })
    }
  }
}
