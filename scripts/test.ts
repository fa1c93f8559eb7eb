/**
 * `npm test [-- <files or node --test flags>]`: runs the node:test suites against real services.
 *
 * When KAFKA_BROKERS and DATABASE_URL are both set, the tests use those services and nothing is started. Otherwise
 * this starts a private, empty stack in `<state dir>/test-<pid>` (its own ports, data and processes, so it never
 * touches a developer's `npm run stack` and two `npm test` runs in one tree cannot stop each other's services), runs
 * the tests one file at a time, then stops and deletes that stack. To run against your own running stack instead:
 * `set -a; eval "$(npm run -s stack -- env)"; set +a; npm test`.
 *
 * Give flags with their value in one argument (`--test-name-pattern=foo`): any argument not starting with `-` is
 * taken as a test file, and without one every `test/**\/*.test.ts` runs.
 *
 * `npm run test:unit` (`--unit`): only the unit files (see `isUnitTest`), with no stack started and the service
 * variables unset, files in parallel.
 */
import { spawn } from 'node:child_process'
import { glob, readFile, rm } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { join, relative } from 'node:path'
import { errorMessage, SfmError } from '../src/errors.ts'
import { redact } from '../src/logger.ts'
import { defaultStateDir, REPO_ROOT } from './stack/config.ts'
import { jdbcFromDatabaseUrl, upConnect } from './stack/connect.ts'
import { isAlive } from './stack/proc.ts'
import { downRegistry, registryUrls, upRegistry } from './stack/registry.ts'
import { down, type StackEnv, testStackDirs, up } from './stack/stack.ts'

const TEST_TIMEOUT_MS = 180_000

const log = (message: string): void => {
  process.stderr.write(`test: ${message}\n`)
}

async function defaultTestFiles(): Promise<string[]> {
  const files: string[] = []
  for await (const file of glob('test/**/*.test.ts', { cwd: REPO_ROOT })) files.push(file)
  return files.sort()
}

/**
 * What makes a test file not a unit test, read from its own text: it uses a service (reads a variable that points at
 * Kafka, PostgreSQL, the registry or Kafka Connect, or calls a test helper that hands one out), or it starts a
 * process (a runner, a CLI, a producer: the kill -9 loops and end-to-end runs). Everything else runs in-process
 * against nothing but the file system (the embedded log, PGlite, local HTTP stand-ins) and is a unit test.
 */
const NOT_UNIT = [
  /\bprocess\.env\.(KAFKA_BROKERS|DATABASE_URL|SCHEMA_REGISTRY_URL|CONNECT_URL)\b/,
  /\b(brokers|databaseUrl|testSchema|serverPgvectorSkip|connectUrl|connectControl)\(/,
  /\b(spawn|spawnSync|spawnNode|startRunner|execFile|execFileSync|fork|schemasCli|runNodeScript|runCli)\(/
]

export function isUnitTest(text: string): boolean {
  return !NOT_UNIT.some((pattern) => pattern.test(text))
}

async function unitTestFiles(): Promise<string[]> {
  const files: string[] = []
  for (const file of await defaultTestFiles()) {
    if (isUnitTest(await readFile(join(REPO_ROOT, file), 'utf8'))) files.push(file)
  }
  return files
}

/** The variables that would point a test at a service; a unit run unsets them. */
const SERVICE_VARIABLES = ['KAFKA_BROKERS', 'DATABASE_URL', 'SCHEMA_REGISTRY_URL', 'CONNECT_URL'] as const

async function runUnitTests(args: string[]): Promise<number> {
  const hasFiles = args.some((arg) => !arg.startsWith('-'))
  const files = hasFiles ? [] : await unitTestFiles()
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const name of SERVICE_VARIABLES) delete env[name]
  // No developer stack either (src/config.ts chooseStack would read its stack.env).
  env.SFM_STACK_DIR = join(REPO_ROOT, '.sfm-stack-none')
  log(`${hasFiles ? 'the given' : files.length} unit test files, no services`)
  return runNodeTest([...args, ...files], env, availableParallelism())
}

/** Stacks left by test runs that were killed (their wrapper pid is gone): stop and delete them. */
async function sweepStaleTestStacks(root: string): Promise<void> {
  for (const { dir, pid } of await testStackDirs(root)) {
    if (pid === process.pid || isAlive(pid)) continue
    log(`removing the stack of an earlier, interrupted run: ${dir}`)
    await downRegistry({ stateDir: dir, purge: true, log }).catch(() => {})
    await down({ stateDir: dir, purge: true, log }).catch((error) => log(`could not stop it: ${errorMessage(error)}`))
    await rm(dir, { recursive: true, force: true })
  }
}

async function startTestStack(stateDir: string): Promise<StackEnv> {
  const started = Date.now()
  log(`KAFKA_BROKERS / DATABASE_URL not set: starting a private stack in ${relative(REPO_ROOT, stateDir)}`)
  const result = await up({ stateDir, fresh: true, log: (message) => log(`stack: ${message}`) })
  log(`stack ready in ${((Date.now() - started) / 1000).toFixed(1)}s`)
  return result.env
}

function runNodeTest(args: string[], env: NodeJS.ProcessEnv, concurrency = 1): Promise<number> {
  return new Promise((resolve, reject) => {
    // A default per-test time-out, so one hung test fails with its name instead of hanging the whole run.
    const timeout = args.some((arg) => arg.startsWith('--test-timeout')) ? [] : [`--test-timeout=${TEST_TIMEOUT_MS}`]
    // No --test-force-exit: it ends a file's process before its results reach the runner, so the rest of that
    // file's tests (and any failure among them) silently vanish from the report. A file that leaves a handle open
    // hangs instead, and .ci/run's timeout names the step.
    const child = spawn(process.execPath, ['--test', `--test-concurrency=${concurrency}`, ...timeout, ...args], {
      cwd: REPO_ROOT,
      env,
      stdio: 'inherit'
    })
    // Ctrl-C reaches the whole process group (the runner too); a SIGTERM sent to us alone is passed on. Either
    // way we wait for the runner to finish so the stack is stopped after the tests, never under them.
    const forward = (signal: NodeJS.Signals): void => {
      child.kill(signal)
    }
    process.on('SIGINT', () => {})
    process.on('SIGTERM', forward)
    child.once('error', reject)
    child.once('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128 + signalNumber(signal))))
  })
}

function signalNumber(signal: NodeJS.Signals): number {
  return signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : signal === 'SIGKILL' ? 9 : 1
}

async function main(): Promise<number> {
  const args = process.argv.slice(2)
  if (args.includes('--unit')) return runUnitTests(args.filter((arg) => arg !== '--unit'))
  const hasFiles = args.some((arg) => !arg.startsWith('-'))
  const testArgs = hasFiles ? args : [...args, ...(await defaultTestFiles())]

  const env: NodeJS.ProcessEnv = { ...process.env }
  let ownStack: string | undefined
  if (!env.KAFKA_BROKERS || !env.DATABASE_URL) {
    const root = defaultStateDir()
    await sweepStaleTestStacks(root)
    ownStack = join(root, `test-${process.pid}`)
    try {
      const stack = await startTestStack(ownStack)
      // A variable the caller did set wins: it points at a service they chose on purpose.
      env.KAFKA_BROKERS ||= stack.KAFKA_BROKERS
      env.DATABASE_URL ||= stack.DATABASE_URL
      // The Kafka Connect + Debezium JDBC sink tests (test/connect/jdbc-sink.test.ts) need a worker (~10 s to start
      // with warm caches); .ci/run asks for it with SFM_TEST_CONNECT=1.
      if (env.SFM_TEST_CONNECT === '1' && !env.CONNECT_URL) {
        const connect = await upConnect({
          stateDir: ownStack,
          brokers: stack.KAFKA_BROKERS,
          ...jdbcFromDatabaseUrl(stack.DATABASE_URL),
          log: (message) => log(`stack: ${message}`)
        })
        env.CONNECT_URL = connect.url
      }
      // The schema registry tests (test/schemas/registry.test.ts, wire.test.ts) run against a real Apicurio
      // Registry (~10 s to start; SFM_TEST_REGISTRY=0 skips it and those tests say so).
      if (!env.SCHEMA_REGISTRY_URL && env.SFM_TEST_REGISTRY !== '0') {
        const registry = await upRegistry({ stateDir: ownStack, log: (message) => log(`stack: ${message}`) })
        env.SCHEMA_REGISTRY_URL = registryUrls(registry.port).SCHEMA_REGISTRY_URL
      }
    } catch (error) {
      await stopTestStack(ownStack)
      throw error
    }
  }
  // Outage tests (test/helpers/stack-control.ts) stop and start the stack's own PostgreSQL: tell them where it lives.
  env.SFM_STACK_DIR = ownStack ?? defaultStateDir()
  log(
    `KAFKA_BROKERS=${env.KAFKA_BROKERS} DATABASE_URL=${redact(env.DATABASE_URL ?? '')} SCHEMA_REGISTRY_URL=${env.SCHEMA_REGISTRY_URL ? redact(env.SCHEMA_REGISTRY_URL) : '(none)'}`
  )

  try {
    return await runNodeTest(testArgs, env)
  } finally {
    if (ownStack !== undefined) await stopTestStack(ownStack)
  }
}

async function stopTestStack(stateDir: string): Promise<void> {
  await downRegistry({ stateDir, purge: true, log: (message) => log(`stack: ${message}`) }).catch((error) =>
    log(`could not stop the test registry in ${stateDir}: ${errorMessage(error)}`)
  )
  await down({ stateDir, purge: true, log: (message) => log(`stack: ${message}`) }).catch((error) =>
    log(`could not stop the test stack in ${stateDir}: ${errorMessage(error)}`)
  )
  await rm(stateDir, { recursive: true, force: true })
}

try {
  process.exitCode = await main()
} catch (error) {
  const detail = error instanceof SfmError || !(error instanceof Error) ? errorMessage(error) : error.stack
  process.stderr.write(`test: error: ${detail}\n`)
  process.exitCode = 1
}
