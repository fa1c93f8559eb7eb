/**
 * `npm run stack -- up|down|env|status`: a single-node Kafka 4.x (KRaft) broker and a PostgreSQL server on
 * 127.0.0.1 for development and tests, without containers. See docs/STACK.md.
 *
 * Progress goes to stderr and the variables to stdout, so `set -a; eval "$(npm run -s stack -- up)"; set +a` works.
 */
import { parseArgs } from 'node:util'
import { endQuietlyWhenStdoutCloses } from '../src/cli/io.ts'
import { errorMessage, SfmError } from '../src/errors.ts'
import { redact } from '../src/logger.ts'
import { defaultStateDir, portFromEnv } from './stack/config.ts'
import { connectStatus, downConnect, jdbcFromDatabaseUrl, upConnect } from './stack/connect.ts'
import { formatEnv } from './stack/env-file.ts'
import { ensurePgvector, pgvectorTarget } from './stack/pgvector.ts'
import { passwordFile } from './stack/postgres.ts'
import { downRegistry, registryStatus, registryUrls, upRegistry } from './stack/registry.ts'
import { requirePostgresBin } from './stack/requirements.ts'
import { down, runningEnv, status, up } from './stack/stack.ts'

const USAGE = `Usage: npm run stack -- <command> [options]

Runs Apache Kafka 4.x (KRaft, one combined broker+controller) and PostgreSQL on 127.0.0.1 for development and tests.

Commands:
  up [--fresh]      start both (or reuse the running ones), wait until they answer, print the variables
  down [--purge]    stop both; --purge also deletes their data
  env               print the variables of the running stack
  status            say what runs (exit 0 when both run, 3 otherwise)
  pgvector          build and install pgvector (pinned, from source) into the stack's PostgreSQL when it has
                    none, so that VECTOR_DATABASE_URL can point at it; needs root and postgresql-server-dev-<major>

Options:
  --fresh           with up: wipe Kafka and PostgreSQL data first
  --purge           with down: delete Kafka and PostgreSQL data after stopping
  --registry        with up: also start Apicurio Registry 3 (in memory; needs Java 21, fetched when missing) and
                    print SCHEMA_REGISTRY_URL; down and status always include it
  --connect         with up: also start Kafka Connect (distributed, one worker) with the Debezium JDBC sink and
                    print CONNECT_URL; down and status always include it
  -h, --help        show this help

Variables printed (stdout, one NAME=value a line):
  KAFKA_BROKERS=127.0.0.1:<port>
  DATABASE_URL=postgres://postgres:<password>@127.0.0.1:<port>/sfm   (the generated password: <state dir>/pg-password)
  SCHEMA_REGISTRY_URL=http://127.0.0.1:<port>/apis/ccompat/v7     (when the registry runs: Confluent API)
  APICURIO_REGISTRY_URL=http://127.0.0.1:<port>/apis/registry/v3   (the same registry, Apicurio's native API)
  CONNECT_URL=http://127.0.0.1:<port>                              (when Kafka Connect runs: its REST API)

Environment:
  SFM_STACK_DIR     state dir (default <repo>/.sfm-stack); it holds data, logs, pid files and stack.env
  KAFKA_PORT, KAFKA_CONTROLLER_PORT, PG_PORT
                    fixed ports for up (default: the last ones used when free, else any free port)
  KAFKA_AUTO_CREATE_TOPICS=true
                    let the broker create topics on first use (default off: create topics explicitly)
  SFM_KAFKA_VERSION Kafka release from Maven Central (default pinned in scripts/stack/config.ts)
  SFM_STACK_CACHE   where the Kafka jars and the pgvector source are cached (default ~/.cache/sfm-stack)
  PG_BIN            folder holding initdb and pg_ctl (default /usr/lib/postgresql/<newest>/bin)
  SFM_GOPROXY       Go module proxy the pgvector source comes from (default: GOPROXY's first URL, else
                    https://proxy.golang.org); the zip must match the SHA-256 pinned in scripts/stack/pgvector.ts
  REGISTRY_PORT     fixed port for the registry; SFM_REGISTRY_VERSION (3.x), SFM_REGISTRY_JAVA (a Java 21+ binary)
  CONNECT_PORT      fixed port for Kafka Connect's REST API; SFM_DEBEZIUM_VERSION (3.x, the JDBC sink plugin)

Use in a shell:  set -a; eval "$(npm run -s stack -- up)"; set +a
`

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      fresh: { type: 'boolean', default: false },
      purge: { type: 'boolean', default: false },
      registry: { type: 'boolean', default: false },
      connect: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
}

async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>
  try {
    parsed = parse(argv)
  } catch (error) {
    return usageError(errorMessage(error))
  }
  const { values, positionals } = parsed
  const [command, ...rest] = positionals
  if (values.help || command === 'help') {
    process.stdout.write(USAGE)
    return 0
  }
  if (command === undefined || rest.length > 0) return usageError('expected exactly one command')
  if (values.fresh && command !== 'up') return usageError('--fresh only goes with up')
  if (values.purge && command !== 'down') return usageError('--purge only goes with down')
  if (values.registry && command !== 'up') return usageError('--registry only goes with up')
  if (values.connect && command !== 'up') return usageError('--connect only goes with up')
  const stateDir = defaultStateDir()

  switch (command) {
    case 'up': {
      const result = await up({
        stateDir,
        fresh: values.fresh,
        kafkaPort: portFromEnv('KAFKA_PORT'),
        kafkaControllerPort: portFromEnv('KAFKA_CONTROLLER_PORT'),
        pgPort: portFromEnv('PG_PORT'),
        autoCreateTopics: process.env.KAFKA_AUTO_CREATE_TOPICS === 'true'
      })
      process.stdout.write(formatEnv(result.env))
      if (values.registry) {
        const registry = await upRegistry({ stateDir, port: portFromEnv('REGISTRY_PORT'), log: stderrLog })
        process.stdout.write(formatRegistryEnv(registry.port))
      }
      if (values.connect) {
        const connect = await upConnect({
          stateDir,
          port: portFromEnv('CONNECT_PORT'),
          brokers: result.env.KAFKA_BROKERS,
          ...jdbcFromDatabaseUrl(result.env.DATABASE_URL),
          log: stderrLog
        })
        process.stdout.write(`CONNECT_URL=${connect.url}\n`)
      }
      return 0
    }
    case 'pgvector':
      await ensurePgvector({ pgBin: await requirePostgresBin(), log: stderrLog })
      return 0
    case 'down':
      // Connect first: it needs the broker to stop cleanly (it commits its sink offsets on the way out).
      await downConnect({ stateDir, purge: values.purge, log: stderrLog })
      await downRegistry({ stateDir, purge: values.purge, log: stderrLog })
      await down({ stateDir, purge: values.purge })
      return 0
    case 'env': {
      const env = await runningEnv(stateDir)
      if (env === undefined) {
        process.stderr.write(`stack: not running in ${stateDir}; start it with \`npm run stack -- up\`\n`)
        return 1
      }
      process.stdout.write(formatEnv(env))
      const registry = await registryStatus(stateDir)
      if (registry.port !== undefined) process.stdout.write(formatRegistryEnv(registry.port))
      const connect = await connectStatus(stateDir)
      if (connect.url !== undefined) process.stdout.write(`CONNECT_URL=${connect.url}\n`)
      return 0
    }
    case 'status': {
      const current = await status(stateDir)
      const describe = (name: string, s: typeof current.kafka): string => {
        if (!s.running) return `${name}: stopped`
        const parts = [`pid ${s.pid}`, s.address, s.version === undefined ? undefined : `version ${s.version}`]
        return `${name}: running, ${parts.filter((part) => part !== undefined).join(', ')}`
      }
      process.stdout.write(`state dir: ${current.stateDir}\n`)
      process.stdout.write(`${describe('kafka', current.kafka)}\n${describe('postgres', current.postgres)}\n`)
      const registry = await registryStatus(stateDir)
      process.stdout.write(
        registry.running
          ? `registry: running, pid ${registry.pid}, ${registryUrls(registry.port ?? 0).APICURIO_REGISTRY_URL}\n`
          : 'registry: stopped\n'
      )
      const connect = await connectStatus(stateDir)
      process.stdout.write(
        connect.running ? `connect: running, pid ${connect.pid}, ${connect.url}\n` : 'connect: stopped\n'
      )
      const vector = await requirePostgresBin()
        .then(pgvectorTarget)
        .catch(() => undefined)
      if (vector !== undefined) {
        const installed = vector.installed ?? 'not installed (`npm run stack -- pgvector` builds it)'
        process.stdout.write(`pgvector: ${installed} in PostgreSQL ${vector.major}\n`)
      }
      // The password stays out of status (a screen, a paste); `env` prints the usable URL.
      if (current.env !== undefined) {
        const url = `postgres://${redact(current.env.DATABASE_URL)} (password in ${passwordFile(stateDir)}; \`env\` prints the URL)`
        process.stdout.write(`KAFKA_BROKERS=${current.env.KAFKA_BROKERS}\nDATABASE_URL=${url}\n`)
      }
      if (registry.port !== undefined) process.stdout.write(formatRegistryEnv(registry.port))
      if (connect.url !== undefined) process.stdout.write(`CONNECT_URL=${connect.url}\n`)
      return current.kafka.running && current.postgres.running ? 0 : 3
    }
    default:
      return usageError(`unknown command "${command}"`)
  }
}

function stderrLog(message: string): void {
  process.stderr.write(`stack: ${message}\n`)
}

function formatRegistryEnv(port: number): string {
  const urls = registryUrls(port)
  return `SCHEMA_REGISTRY_URL=${urls.SCHEMA_REGISTRY_URL}\nAPICURIO_REGISTRY_URL=${urls.APICURIO_REGISTRY_URL}\n`
}

function usageError(message: string): number {
  process.stderr.write(`stack: ${message}\n\n${USAGE}`)
  return 2
}

endQuietlyWhenStdoutCloses()
try {
  process.exitCode = await main(process.argv.slice(2))
} catch (error) {
  // Our own errors (missing Java, port in use, time-outs…) carry their whole explanation; others get the stack.
  const detail = error instanceof SfmError || !(error instanceof Error) ? errorMessage(error) : error.stack
  process.stderr.write(`stack: error: ${detail}\n`)
  process.exitCode = 1
}
