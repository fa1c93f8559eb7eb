import { readdir, rm, rmdir } from 'node:fs/promises'
import { join } from 'node:path'
import { errorMessage, FatalError } from '../../src/errors.ts'
import { defaultStateDir, kafkaVersion, stackDefaults } from './config.ts'
import { connectPaths, stopConnect } from './connect.ts'
import { envFilePath, readEnvFile, type StackEnv, type StackPorts, writeEnvFile } from './env-file.ts'
import {
  configuredKafkaPorts,
  ensureKafkaLibs,
  kafkaPaths,
  type Log,
  runningKafkaPid,
  runningKafkaVersion,
  startKafka,
  stopKafka,
  waitForKafka
} from './kafka.ts'
import { withStateLock } from './lock.ts'
import { pgvectorMissingMessage, pgvectorTarget } from './pgvector.ts'
import {
  databaseUrl,
  passwordFile,
  purgePg,
  readPassword,
  runningPostgres,
  startPostgres,
  stopPostgres,
  waitForPostgres
} from './postgres.ts'
import { freePort, isPortFree } from './proc.ts'
import { requireJava, requirePostgresBin } from './requirements.ts'

export type { Log, StackEnv }

const stderrLog: Log = (message) => process.stderr.write(`stack: ${message}\n`)

export interface UpOptions {
  /** Default `<repo>/.sfm-stack` or SFM_STACK_DIR. */
  stateDir?: string
  /** Fixed ports; otherwise the last ones used by this state dir when still free, else any free port. */
  kafkaPort?: number
  kafkaControllerPort?: number
  pgPort?: number
  /** Wipe Kafka and PostgreSQL data first. */
  fresh?: boolean
  /** Broker-side topic auto-creation; off by default so that a missing topic fails loudly. */
  autoCreateTopics?: boolean
  log?: Log
}

export interface UpResult {
  stateDir: string
  env: StackEnv
  /** What this call started (false: it was already running and is reused). */
  started: { kafka: boolean; postgres: boolean }
}

const upDefaults = {
  fresh: false,
  autoCreateTopics: false
} satisfies Partial<UpOptions>

/**
 * Starts (or reuses) Kafka and PostgreSQL for one state dir and waits until both answer real requests. On failure
 * it stops what it started itself, so a failed `up` leaves the machine as it found it.
 */
export async function up(options: UpOptions = {}): Promise<UpResult> {
  const stateDir = options.stateDir ?? defaultStateDir()
  const log = options.log ?? stderrLog
  const { fresh, autoCreateTopics } = { ...upDefaults, ...options }
  return withStateLock(stateDir, stackDefaults.lockTimeoutMs, async () => {
    if (fresh && (await hasState(stateDir))) {
      log('--fresh: stopping and wiping the existing stack')
      await downUnlocked(stateDir, true, log)
    }
    // Every requirement is checked before anything starts.
    const java = await requireJava()
    const pgBin = await requirePostgresBin()
    const version = kafkaVersion()
    const libs = await ensureKafkaLibs(version, log)
    const previous = (await readEnvFile(stateDir))?.ports
    const started = { kafka: false, postgres: false }

    try {
      // What runs already is reused; ports for the rest are all chosen (and checked) before anything starts.
      const kafkaPid = await runningKafkaPid(stateDir)
      const kafkaRunning = kafkaPid === undefined ? undefined : await configuredKafkaPorts(stateDir)
      if (kafkaPid !== undefined && kafkaRunning === undefined) {
        throw new FatalError(`kafka runs (pid ${kafkaPid}) but its server.properties is gone; run \`down\` first`)
      }
      const pgRunning = await runningPostgres(stateDir, pgBin)
      const taken: number[] = [
        ...(kafkaRunning === undefined ? [] : [kafkaRunning.port, kafkaRunning.controllerPort]),
        ...(pgRunning === undefined ? [] : [pgRunning.port])
      ]
      const choose = async (name: string, requested: number | undefined, last: number | undefined) => {
        const port = await pickPort(name, requested, last, taken)
        taken.push(port)
        return port
      }
      const kafka = kafkaRunning ?? {
        port: await choose('KAFKA_PORT', options.kafkaPort, previous?.kafkaPort),
        controllerPort: await choose(
          'KAFKA_CONTROLLER_PORT',
          options.kafkaControllerPort,
          previous?.kafkaControllerPort
        )
      }
      const pgPort = pgRunning?.port ?? (await choose('PG_PORT', options.pgPort, previous?.pgPort))

      let pid = kafkaPid
      if (pid !== undefined) {
        log(`kafka: already running (pid ${pid}) on ${stackDefaults.host}:${kafka.port}`)
        warnIfMoved('KAFKA_PORT', options.kafkaPort, kafka.port, log)
      } else {
        log(`kafka ${version}: starting on ${stackDefaults.host}:${kafka.port} (controller ${kafka.controllerPort})`)
        started.kafka = true
        pid = await startKafka({ stateDir, java: java.path, libs, ...kafka, autoCreateTopics, log })
      }
      // PostgreSQL starts while the JVM boots: pg_ctl -w returns in about a second.
      if (pgRunning !== undefined) {
        log(`postgres: already running (pid ${pgRunning.pid}) on ${stackDefaults.host}:${pgPort}`)
        if ((await readPassword(stateDir)) === undefined) {
          log(
            'postgres: it was started by an earlier version and trusts local connections: `down` and `up` set a password'
          )
        }
        warnIfMoved('PG_PORT', options.pgPort, pgPort, log)
      } else {
        started.postgres = true
        await startPostgres({ stateDir, bin: pgBin, port: pgPort, log })
      }

      // Both waits run to their end (not Promise.all): a wait still polling after a rollback keeps the process alive.
      const waits = await Promise.allSettled([
        waitForKafka(stateDir, kafka.port, pid, stackDefaults.readyTimeoutMs),
        waitForPostgres(stateDir, pgPort, stackDefaults.readyTimeoutMs)
      ])
      for (const wait of waits) if (wait.status === 'rejected') throw wait.reason
      const env: StackEnv = {
        KAFKA_BROKERS: `${stackDefaults.host}:${kafka.port}`,
        DATABASE_URL: databaseUrl(pgPort, (await readPassword(stateDir)) ?? '')
      }
      const ports: StackPorts = { kafkaPort: kafka.port, kafkaControllerPort: kafka.controllerPort, pgPort }
      await writeEnvFile(stateDir, { env, ports })
      log('kafka and postgres are ready')
      await warnWithoutPgvector(pgBin, log)
      return { stateDir, env, started }
    } catch (error) {
      if (started.kafka || started.postgres) {
        log(`start-up failed, stopping what this run started: ${errorMessage(error)}`)
        if (started.kafka) await stopKafka(stateDir, stackDefaults.stopTimeoutMs, log).catch(() => {})
        if (started.postgres) await stopPostgres(stateDir, pgBin, log).catch(() => {})
      }
      throw error
    }
  })
}

/** Says at every `up` when VECTOR_DATABASE_URL could not use this server (no pgvector); never fails `up`. */
async function warnWithoutPgvector(pgBin: string, log: Log): Promise<void> {
  const target = await pgvectorTarget(pgBin).catch(() => undefined)
  if (target !== undefined && target.installed === undefined) log(pgvectorMissingMessage(target))
}

function warnIfMoved(name: string, wanted: number | undefined, actual: number, log: Log): void {
  if (wanted !== undefined && wanted !== actual) {
    log(`${name}=${wanted} is ignored: the running service uses ${actual} (run \`down\` first to move it)`)
  }
}

/** An explicitly requested port must be free; a remembered one is reused when free; otherwise any free port. */
async function pickPort(
  name: string,
  requested: number | undefined,
  previous: number | undefined,
  taken: readonly number[]
): Promise<number> {
  const host = stackDefaults.host
  if (requested !== undefined) {
    if (taken.includes(requested) || !(await isPortFree(requested, host))) {
      throw new FatalError(`${name}=${requested}: ${host}:${requested} is already in use; pick another port`)
    }
    return requested
  }
  if (previous !== undefined && !taken.includes(previous) && (await isPortFree(previous, host))) return previous
  for (;;) {
    const port = await freePort(host)
    if (!taken.includes(port)) return port
  }
}

export interface DownOptions {
  stateDir?: string
  /** Also delete Kafka's log dir, the PostgreSQL cluster, logs and stack.env. */
  purge?: boolean
  log?: Log
}

/** Stops both services (a no-op for those not running); `purge` wipes their data too. */
export async function down(options: DownOptions = {}): Promise<void> {
  const stateDir = options.stateDir ?? defaultStateDir()
  const log = options.log ?? stderrLog
  await withStateLock(stateDir, stackDefaults.lockTimeoutMs, () => downUnlocked(stateDir, options.purge ?? false, log))
  if (options.purge) await rmdir(stateDir).catch(() => {}) // only when empty: test stacks may live inside it
}

async function downUnlocked(stateDir: string, purge: boolean, log: Log): Promise<void> {
  // A Connect worker (`up --connect`) first: it commits its sink offsets to the broker on the way out, and must not
  // outlive the Kafka data it keeps its state in (`--fresh`, `--purge`, test stacks).
  const connectStopped = await stopConnect(stateDir, log)
  const kafkaStopped = await stopKafka(stateDir, stackDefaults.stopTimeoutMs, log)
  const pgBin = await requirePostgresBin().catch(() => undefined)
  const pgStopped = pgBin === undefined ? false : await stopPostgres(stateDir, pgBin, log)
  if (!connectStopped && !kafkaStopped && !pgStopped) log(`nothing was running in ${stateDir}`)
  if (purge) {
    log(`purging data in ${stateDir}`)
    await rm(connectPaths(stateDir).root, { recursive: true, force: true })
    await rm(kafkaPaths(stateDir).root, { recursive: true, force: true })
    await purgePg(stateDir)
    await rm(envFilePath(stateDir), { force: true })
    await rm(passwordFile(stateDir), { force: true })
  }
}

async function hasState(stateDir: string): Promise<boolean> {
  const entries = await readdir(stateDir).catch(() => [] as string[])
  return entries.some((name) => name === 'kafka' || name === 'pg' || name === 'stack.env')
}

export interface ServiceStatus {
  running: boolean
  pid?: number
  address?: string
  version?: string
}

export interface StackStatus {
  stateDir: string
  kafka: ServiceStatus
  postgres: ServiceStatus
  /** The variables, when both services run. */
  env?: StackEnv
}

export async function status(stateDir: string = defaultStateDir()): Promise<StackStatus> {
  const host = stackDefaults.host
  const kafkaPid = await runningKafkaPid(stateDir)
  const kafkaPorts = kafkaPid === undefined ? undefined : await configuredKafkaPorts(stateDir)
  const kafka: ServiceStatus =
    kafkaPid === undefined
      ? { running: false }
      : {
          running: true,
          pid: kafkaPid,
          address: kafkaPorts === undefined ? undefined : `${host}:${kafkaPorts.port}`,
          version: await runningKafkaVersion(kafkaPid)
        }
  const pgBin = await requirePostgresBin().catch(() => undefined)
  const pg = pgBin === undefined ? undefined : await runningPostgres(stateDir, pgBin)
  const postgres: ServiceStatus =
    pg === undefined ? { running: false } : { running: true, pid: pg.pid, address: `${host}:${pg.port}` }
  const file = await readEnvFile(stateDir)
  const env = kafka.running && postgres.running ? file?.env : undefined
  return { stateDir, kafka, postgres, ...(env === undefined ? {} : { env }) }
}

/** The variables of a running stack, or undefined when it (or half of it) is not running. */
export async function runningEnv(stateDir: string = defaultStateDir()): Promise<StackEnv | undefined> {
  return (await status(stateDir)).env
}

/** State dirs of per-run test stacks (`test-<pid>`) inside a state dir, for scripts/test.ts to sweep. */
export async function testStackDirs(stateDir: string): Promise<{ dir: string; pid: number }[]> {
  const entries = await readdir(stateDir, { withFileTypes: true }).catch(() => [])
  return entries
    .filter((entry) => entry.isDirectory() && /^test-\d+$/.test(entry.name))
    .map((entry) => ({ dir: join(stateDir, entry.name), pid: Number(entry.name.slice('test-'.length)) }))
}
