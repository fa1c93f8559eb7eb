import { spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { access, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FatalError } from '../../src/errors.ts'
import { cacheDir, kafkaVersion, stackDefaults } from './config.ts'
import { withStateLock } from './lock.ts'
import { commandLine, freePort, isAlive, isPortFree, readPidFile, run, sleep, tail, waitFor } from './proc.ts'
import { requireJava, requireMaven } from './requirements.ts'

/**
 * `npm run stack -- up --connect`: Kafka Connect in distributed mode (one worker) from Maven Central jars
 * (org.apache.kafka:connect-runtime, the broker's version) with the Debezium JDBC sink plugin
 * (io.debezium:debezium-connector-jdbc, `plugin` tar.gz), REST API on 127.0.0.1. Its own module with its own pid
 * and port files under `<state dir>/connect/`, like the registry: Kafka and PostgreSQL are untouched.
 *
 * Distributed rather than standalone: connectors are created over REST (as kafbat UI, the compose init step and
 * Strimzi do), and offsets, configs and status live in Kafka topics, so a restarted worker resumes where the last
 * one committed.
 */

export type Log = (message: string) => void

export const connectDefaults = {
  heap: '512m',
  stopTimeoutMs: 30_000,
  groupId: 'sfm-connect',
  /** Internal topics are `<prefix>.configs|offsets|status`; the KafkaUser ACL of deploy/strimzi grants the prefix. */
  topicPrefix: 'sfm-connect',
  /** Only these variables can be read through `${env:…}` in connector configs (EnvVarConfigProvider allowlist). */
  envAllowlist: 'SFM_CONNECT_.*'
} as const

export interface ConnectPaths {
  root: string
  workerProperties: string
  log4jProperties: string
  pidFile: string
  portFile: string
  /** log4j's rolling worker log. */
  log: string
  /** The JVM's own stdout/stderr. */
  out: string
}

export function connectPaths(stateDir: string): ConnectPaths {
  const root = join(stateDir, 'connect')
  return {
    root,
    workerProperties: join(root, 'worker.properties'),
    log4jProperties: join(root, 'log4j2.properties'),
    pidFile: join(root, 'connect.pid'),
    portFile: join(root, 'connect.port'),
    log: join(root, 'connect.log'),
    out: join(root, 'connect.out')
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false
  )
}

export function debeziumVersion(env: NodeJS.ProcessEnv = process.env): string {
  const version = env.SFM_DEBEZIUM_VERSION ?? stackDefaults.debeziumVersion
  if (!/^3\.\d+\.\d+\.(Final|CR\d+|Beta\d+|Alpha\d+)$/.test(version)) {
    throw new FatalError(`SFM_DEBEZIUM_VERSION must be a Debezium 3.x release such as 3.6.0.Final, got "${version}"`)
  }
  return version
}

interface MavenFetch {
  /** Folder in the cache that holds pom.xml and the result. */
  home: string
  /** The result folder inside home; complete once it holds `.complete`. */
  target: string
  pom: string
  /** Goal and its parameters; `-DoutputDirectory` is added. */
  goal: string[]
  what: string
  /** Runs on the downloaded files in the staging folder before it is renamed into place. */
  after?: (staging: string) => Promise<void>
}

/**
 * Resolves artifacts with Maven into a cache folder, through a staging folder renamed into place, so that a
 * concurrent `up` or an interrupted download never leaves half a classpath (the same scheme as the broker's jars).
 */
async function mavenFetch(fetch: MavenFetch, log: Log): Promise<string> {
  if (await exists(join(fetch.target, '.complete'))) return fetch.target
  const mvn = await requireMaven()
  log(`connect: resolving ${fetch.what} with Maven into ${fetch.target}`)
  await mkdir(fetch.home, { recursive: true })
  const pom = join(fetch.home, `pom.${process.pid}.xml`)
  await writeFile(pom, fetch.pom)
  const staging = `${fetch.target}.${process.pid}.tmp`
  await rm(staging, { recursive: true, force: true })
  try {
    const result = await run(
      mvn,
      ['-B', '-q', '--strict-checksums', '-f', pom, ...fetch.goal, `-DoutputDirectory=${staging}`],
      {
        cwd: fetch.home
      }
    )
    if (result.code !== 0) {
      const output = `${result.stdout}${result.stderr}`.trim().split('\n').slice(-25).join('\n')
      throw new FatalError(
        `Maven could not resolve ${fetch.what} (exit ${result.code}). Is Maven Central reachable?\n${output}`
      )
    }
    await fetch.after?.(staging)
    await writeFile(join(staging, '.complete'), `${new Date().toISOString()}\n`)
    try {
      await rename(staging, fetch.target)
    } catch {
      if (!(await exists(join(fetch.target, '.complete')))) {
        await rm(fetch.target, { recursive: true, force: true })
        await rename(staging, fetch.target)
      }
    }
    return fetch.target
  } finally {
    await rm(staging, { recursive: true, force: true })
    await rm(pom, { force: true })
  }
}

const pomHeader = (artifactId: string) => `<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/stack/connect.ts: only used to resolve jars into the stack cache. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.sfm-stack</groupId>
  <artifactId>${artifactId}</artifactId>
  <version>1</version>
  <packaging>pom</packaging>`

/** connect-runtime (which brings connect-api, -json, -transforms, kafka-clients, Jetty, Jersey) and log4j's binding. */
export function ensureConnectLibs(kafkaVersion: string, log: Log): Promise<string> {
  const home = join(cacheDir(), `connect-${kafkaVersion}`)
  return mavenFetch(
    {
      home,
      target: join(home, 'libs'),
      what: `org.apache.kafka:connect-runtime:${kafkaVersion}`,
      goal: ['dependency:copy-dependencies', '-DincludeScope=runtime'],
      pom: `${pomHeader('connect-runtime')}
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>connect-runtime</artifactId>
      <version>${kafkaVersion}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>${stackDefaults.log4jVersion}</version>
    </dependency>
  </dependencies>
</project>
`
    },
    log
  )
}

/**
 * The Debezium JDBC sink as Debezium publishes it for Connect: the `plugin` tar.gz, one folder of jars (the
 * connector, Hibernate, the JDBC drivers) that Connect loads in its own class loader. Returns the plugin.path folder.
 */
export function ensureJdbcSinkPlugin(version: string, log: Log): Promise<string> {
  const home = join(cacheDir(), `debezium-jdbc-${version}`)
  return mavenFetch(
    {
      home,
      target: join(home, 'plugins'),
      what: `io.debezium:debezium-connector-jdbc:${version} (plugin tar.gz)`,
      // `copy` fetches just this artifact: resolving the graph (copy-dependencies) would read the descriptors of
      // the connector's dependencies, and Debezium's pom names an extra repository that is not needed for them.
      goal: ['dependency:copy', `-Dartifact=io.debezium:debezium-connector-jdbc:${version}:tar.gz:plugin`],
      pom: `${pomHeader('debezium-jdbc-plugin')}
</project>
`,
      after: async (staging) => {
        const archive = join(staging, `debezium-connector-jdbc-${version}-plugin.tar.gz`)
        const untar = await run('tar', ['-xzf', archive, '-C', staging])
        if (untar.code !== 0) throw new FatalError(`connect: cannot unpack ${archive}: ${untar.stderr}`)
        await rm(archive)
        if (!(await exists(join(staging, 'debezium-connector-jdbc')))) {
          throw new FatalError(`connect: ${archive} holds no debezium-connector-jdbc folder`)
        }
      }
    },
    log
  )
}

export interface WorkerConfig {
  port: number
  brokers: string
  pluginPath: string
}

/** Worker properties for a single dev worker; regenerated at every start. */
export function workerProperties(config: WorkerConfig): string {
  const prefix = connectDefaults.topicPrefix
  const settings: Record<string, string | number> = {
    'bootstrap.servers': config.brokers,
    'group.id': connectDefaults.groupId,
    listeners: `http://${stackDefaults.host}:${config.port}`,
    'rest.advertised.host.name': stackDefaults.host,
    'rest.advertised.port': config.port,
    'rest.advertised.listener': 'http',
    'plugin.path': config.pluginPath,
    // The Debezium plugin and Connect's own plugins all have ServiceLoader manifests; the reflective scan they
    // would otherwise get took 15 of the 27 seconds a start needed on the 2-core dev machine.
    'plugin.discovery': 'service_load',
    'config.storage.topic': `${prefix}.configs`,
    'offset.storage.topic': `${prefix}.offsets`,
    'status.storage.topic': `${prefix}.status`,
    'config.storage.replication.factor': 1,
    'offset.storage.replication.factor': 1,
    'status.storage.replication.factor': 1,
    'offset.storage.partitions': 5,
    'status.storage.partitions': 1,
    // Defaults for connectors that do not name their own converters (ours do).
    'key.converter': 'org.apache.kafka.connect.storage.StringConverter',
    'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
    'offset.flush.interval.ms': 2000,
    // With one worker, a restart makes the previous member's tasks "lost"; the default waits 5 minutes for it to
    // come back before reassigning them. Reassign at once.
    'scheduled.rebalance.max.delay.ms': 0,
    // Sink tasks' consumers: after a crash (kill -9) the dead member holds its partitions until its session expires,
    // 45 s by default; the restarted task waits that long. 10 s is plenty on loopback.
    'consumer.session.timeout.ms': 10_000,
    'consumer.heartbeat.interval.ms': 3000,
    'config.providers': 'env',
    'config.providers.env.class': 'org.apache.kafka.common.config.provider.EnvVarConfigProvider',
    'config.providers.env.param.allowlist.pattern': connectDefaults.envAllowlist
  }
  const lines = Object.entries(settings).map(([key, value]) => `${key}=${value}`)
  return `# Generated by scripts/stack/connect.ts at every start; edit that file, not this one.\n${lines.join('\n')}\n`
}

function log4jProperties(paths: ConnectPaths): string {
  return `# Generated by scripts/stack/connect.ts
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = ${paths.log}
appender.file.filePattern = ${paths.log}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 10MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.reflections.name = org.reflections
logger.reflections.level = ERROR
`
}

const MAIN_CLASS = 'org.apache.kafka.connect.cli.ConnectDistributed'

function stackMarker(stateDir: string): string {
  return `-Dsfm.stack.dir=${stateDir}`
}

export function connectUrl(port: number): string {
  return `http://${stackDefaults.host}:${port}`
}

/** The pid of this state dir's worker when it runs (checked against its command line, so a reused pid is not it). */
export async function runningConnectPid(stateDir: string): Promise<number | undefined> {
  const pid = await readPidFile(connectPaths(stateDir).pidFile)
  if (pid === undefined || !isAlive(pid)) return undefined
  const argv = await commandLine(pid)
  if (argv === undefined) return pid
  return argv.includes(MAIN_CLASS) && argv.includes(stackMarker(stateDir)) ? pid : undefined
}

async function readPort(stateDir: string): Promise<number | undefined> {
  const port = Number((await readFile(connectPaths(stateDir).portFile, 'utf8').catch(() => '')).trim())
  return Number.isInteger(port) && port > 0 ? port : undefined
}

export interface ConnectStatus {
  running: boolean
  pid?: number
  port?: number
  url?: string
}

export async function connectStatus(stateDir: string): Promise<ConnectStatus> {
  const pid = await runningConnectPid(stateDir)
  const port = await readPort(stateDir)
  if (pid === undefined || port === undefined) return { running: false }
  return { running: true, pid, port, url: connectUrl(port) }
}

export interface WorkerEnv {
  /** Bootstrap servers, `host:port[,host:port]`. */
  brokers: string
  /** What `${env:SFM_CONNECT_JDBC_URL}` etc. resolve to in connector configs. */
  jdbcUrl: string
  jdbcUser: string
  jdbcPassword?: string
}

export interface StartWorkerOptions extends WorkerEnv {
  stateDir: string
  port: number
  java: string
  libs: string
  pluginPath: string
  log: Log
}

/** Writes the configuration and starts the worker in the background; resolves with its pid. */
export async function startConnectWorker(options: StartWorkerOptions): Promise<number> {
  const paths = connectPaths(options.stateDir)
  await mkdir(paths.root, { recursive: true })
  await writeFile(
    paths.workerProperties,
    workerProperties({ port: options.port, brokers: options.brokers, pluginPath: options.pluginPath })
  )
  await writeFile(paths.log4jProperties, log4jProperties(paths))
  await writeFile(paths.portFile, `${options.port}\n`)
  // Only the SFM_CONNECT_* values the connector configs reference are added; the worker never sees the caller's
  // other secrets through ${env:…} anyway (allowlist), but they need not be in its environment either.
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LANG: process.env.LANG ?? 'C.UTF-8',
    SFM_CONNECT_JDBC_URL: options.jdbcUrl,
    SFM_CONNECT_JDBC_USER: options.jdbcUser,
    SFM_CONNECT_JDBC_PASSWORD: options.jdbcPassword ?? ''
  }
  const out = openSync(paths.out, 'a')
  try {
    const child = spawn(
      options.java,
      [
        '-Xms128m',
        `-Xmx${connectDefaults.heap}`,
        '-XX:+UseG1GC',
        '-XX:MaxGCPauseMillis=20',
        '-XX:+ExitOnOutOfMemoryError',
        '-Djava.awt.headless=true',
        `-Dlog4j2.configurationFile=${paths.log4jProperties}`,
        stackMarker(options.stateDir),
        '-cp',
        join(options.libs, '*'),
        MAIN_CLASS,
        paths.workerProperties
      ],
      { detached: true, stdio: ['ignore', out, out], cwd: paths.root, env }
    )
    const pid = child.pid
    if (pid === undefined) throw new FatalError(`connect: could not start ${options.java}`)
    child.unref()
    await writeFile(paths.pidFile, `${pid}\n`)
    return pid
  } finally {
    closeSync(out)
  }
}

/**
 * Ready means `GET /health` says healthy (KIP-1017): the worker has joined its group and read the config topic, so
 * a connector created now is accepted instead of answered with 409/503. And the JDBC sink plugin must be loaded.
 */
export async function waitForConnect(stateDir: string, port: number, pid: number, timeoutMs: number): Promise<void> {
  const paths = connectPaths(stateDir)
  const url = connectUrl(port)
  await waitFor(
    async () => {
      if (!isAlive(pid)) {
        const logs = [await tail(paths.out, 15), await tail(paths.log, 30)].filter((text) => text !== '').join('\n')
        throw new FatalError(`connect: the worker exited during start-up. Its last log lines:\n${logs}`)
      }
      try {
        const health = await fetch(`${url}/health`, { signal: AbortSignal.timeout(5000) })
        if (!health.ok) return { done: false, error: new Error(`/health answered ${health.status}`) }
        const plugins = (await (await fetch(`${url}/connector-plugins`)).json()) as { class: string }[]
        if (!plugins.some((p) => p.class === 'io.debezium.connector.jdbc.JdbcSinkConnector')) {
          throw new FatalError(`connect: the JDBC sink plugin is not loaded (plugins: ${JSON.stringify(plugins)})`)
        }
        return { done: true, value: undefined }
      } catch (error) {
        if (error instanceof FatalError) throw error
        return { done: false, error }
      }
    },
    { timeoutMs, intervalMs: 500, what: `Kafka Connect on ${url} (log: ${paths.log})` }
  )
}

/** SIGTERM (the worker stops its tasks and commits their offsets), SIGKILL after the timeout; or SIGKILL at once. */
export async function stopConnect(
  stateDir: string,
  log: Log,
  signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'
): Promise<boolean> {
  const paths = connectPaths(stateDir)
  const pid = await runningConnectPid(stateDir)
  if (pid === undefined) {
    await rm(paths.pidFile, { force: true })
    return false
  }
  log(`connect: stopping pid ${pid}${signal === 'SIGKILL' ? ' with SIGKILL' : ''}`)
  const send = (name: NodeJS.Signals) => {
    try {
      process.kill(pid, name)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error
    }
  }
  send(signal)
  const deadline = Date.now() + connectDefaults.stopTimeoutMs
  while (isAlive(pid) && Date.now() < deadline) await sleep(200)
  if (isAlive(pid)) {
    log(`connect: pid ${pid} still runs after ${connectDefaults.stopTimeoutMs / 1000}s, sending SIGKILL`)
    send('SIGKILL')
    const killDeadline = Date.now() + 10_000
    while (isAlive(pid) && Date.now() < killDeadline) await sleep(100)
    if (isAlive(pid)) throw new FatalError(`connect: pid ${pid} survived SIGKILL`)
  }
  await rm(paths.pidFile, { force: true })
  return true
}

export interface UpConnectOptions extends WorkerEnv {
  stateDir: string
  /** Fixed REST port; otherwise the last one used when free, else any free port. */
  port?: number
  log: Log
}

export interface UpConnectResult {
  port: number
  url: string
  started: boolean
  /** Seconds from spawning the JVM to a healthy worker (when started). */
  startSeconds?: number
}

/** Starts (or reuses) the worker and waits until it is healthy; a worker that fails to start is stopped again. */
export async function upConnect(options: UpConnectOptions): Promise<UpConnectResult> {
  const { stateDir, log } = options
  return withStateLock(stateDir, stackDefaults.lockTimeoutMs, async () => {
    const running = await runningConnectPid(stateDir)
    const previousPort = await readPort(stateDir)
    if (running !== undefined && previousPort !== undefined) {
      log(`connect: already running (pid ${running}) on ${connectUrl(previousPort)}`)
      return { port: previousPort, url: connectUrl(previousPort), started: false }
    }
    const java = await requireJava()
    // One Maven at a time: two runs filling the same local repository (the first time: its plugins) can collide.
    // Connect runs the broker's Kafka version: one pin (SFM_KAFKA_VERSION / stackDefaults) for both.
    const libs = await ensureConnectLibs(kafkaVersion(), log)
    const pluginPath = await ensureJdbcSinkPlugin(debeziumVersion(), log)
    const host = stackDefaults.host
    let port = options.port
    if (port !== undefined && !(await isPortFree(port, host))) {
      throw new FatalError(`CONNECT_PORT=${port}: ${host}:${port} is already in use; pick another port`)
    }
    if (port === undefined) {
      port = previousPort !== undefined && (await isPortFree(previousPort, host)) ? previousPort : await freePort(host)
    }
    log(`connect: Kafka Connect ${kafkaVersion()} + Debezium JDBC sink ${debeziumVersion()} on ${connectUrl(port)}`)
    const started = Date.now()
    const pid = await startConnectWorker({ ...options, port, java: java.path, libs, pluginPath })
    try {
      await waitForConnect(stateDir, port, pid, stackDefaults.connectReadyTimeoutMs)
    } catch (error) {
      await stopConnect(stateDir, log, 'SIGKILL').catch(() => {})
      throw error
    }
    const startSeconds = (Date.now() - started) / 1000
    log(`connect: ready in ${startSeconds.toFixed(1)}s`)
    return { port, url: connectUrl(port), started: true, startSeconds }
  })
}

/** Stops the worker; `purge` deletes its folder (its state lives in Kafka topics and goes with Kafka's data). */
export async function downConnect(options: { stateDir: string; purge?: boolean; log: Log }): Promise<boolean> {
  return withStateLock(options.stateDir, stackDefaults.lockTimeoutMs, async () => {
    const stopped = await stopConnect(options.stateDir, options.log)
    if (options.purge) await rm(connectPaths(options.stateDir).root, { recursive: true, force: true })
    return stopped
  })
}

/** The JDBC form of the stack's DATABASE_URL (`postgres://user[:password]@host:port/db`) for the sink's settings. */
export function jdbcFromDatabaseUrl(databaseUrl: string): Pick<WorkerEnv, 'jdbcUrl' | 'jdbcUser' | 'jdbcPassword'> {
  const url = new URL(databaseUrl)
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new FatalError(`DATABASE_URL must be a postgres:// URL, got ${url.protocol}`)
  }
  return {
    jdbcUrl: `jdbc:postgresql://${url.host}${url.pathname}`,
    jdbcUser: decodeURIComponent(url.username),
    jdbcPassword: decodeURIComponent(url.password)
  }
}
