#!/usr/bin/env node
import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { chooseStack, describeStack, envInt, topicName, unreachableServers } from '../config.ts'
import { memorySourcesOf, type TopicReader, topicReaderFromEnv } from '../console/data.ts'
import { ConsoleRecorder, combineObservers } from '../console/recorder.ts'
import { logRedrive } from '../console/redrive.ts'
import { type ConsoleServer, startConsole } from '../console/server.ts'
import { feedDemo, formatReport } from '../demo/index.ts'
import { describeError, ErrorKinds, errorMessage, kindOf, SfmError } from '../errors.ts'
import { describeKafkaConnection, kafkaConnectionOptions } from '../kafka/connection.ts'
import { LogTargets, logTarget } from '../log/options.ts'
import { createLogger } from '../logger.ts'
import { openLogAccess } from '../ops/log.ts'
import { seedShadowGroup } from '../ops/offsets.ts'
import type { ShadowGroup } from '../sources/types.ts'
import { toMermaid, topologyGraph } from '../streams/graph.ts'
import { DEFAULT_HELD_AFTER_MS, formatHeld } from '../streams/held-sinks.ts'
import type { NodeCounts } from '../streams/node-counters.ts'
import { Runtime, type RuntimeStats, type ShadowReport } from '../streams/runtime.ts'
import { isTopology, type Topology } from '../streams/topology.ts'
import { createMetrics, type Metrics } from '../telemetry/metrics.ts'
import { telemetryObserver } from '../telemetry/runtime-observer.ts'
import { startTracing } from '../telemetry/tracing.ts'

const USAGE = `Usage: npm start -- <topology file> [options]
       npm start -- <topology file> --help   (this, then what that topology does and reads)

Runs a topology: consumes its source, writes every sink branch, dead-letters poison, commits what is durable.

Options:
  --until-idle[=SECONDS]     exit 0 once caught up: nothing in flight, all committed, no message for SECONDS (5)
  --metrics-port PORT        serve Prometheus metrics at http://127.0.0.1:PORT/metrics (0: any free port)
  --metrics-host HOST        interface for the metrics endpoint (default 127.0.0.1)
  --status-interval SECONDS  print a status line every SECONDS (default 5; 0: never)
  --data-dir DIR             where the embedded log and PGlite live when no servers are configured
                             (same as SFM_DATA_DIR; default ./.sfm-data)
  --demo N                   memory topology: first feed N demo memory events (creates, updates, deletes,
                             duplicates, a few invalid), run until idle, then print a report (src/demo/)
  --console [PORT]           serve the web console at http://127.0.0.1:PORT/ (default 7070; 0: any free port): the
                             graph with live figures, lag and throughput, dead letters, a memory's row and history
  --console-host HOST        interface for the console (default 127.0.0.1)
  --console-allow-writes     let the console redrive dead letters (read-only without it)
  --shadow                   a shadow run: consume the real topics under a group of its own (<group>.shadow,
                             printed; started where the real group stands), write nothing — PostgreSQL sinks run
                             each batch in a transaction and roll it back (exact outcome counts), Kafka and vector
                             sinks only count, dead letters are counted — and print what it would have done (status
                             line, a summary at exit and one JSON object on stdout). The real group never moves
  --graph                    print the topology as a Mermaid flowchart (source → operators → branches → sinks,
                             DLQ) and exit without running it
  -h, --help                 show this help

Environment (KAFKA_BROKERS and DATABASE_URL default to the local stack of \`npm run stack -- up\` while it runs,
not with --data-dir; the first line printed says what is used and why):
  KAFKA_BROKERS              host:port[,host:port] of the Kafka cluster (required by Kafka sources and sinks)
  KAFKA_SASL_MECHANISM       PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512, with KAFKA_SASL_USERNAME and
                             KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE (a file holding the password)
  KAFKA_TLS                  true: TLS to the brokers (implied by any KAFKA_TLS_*_FILE)
  KAFKA_TLS_CA_FILE          PEM CA the brokers' certificates chain to (default: the system CAs)
  KAFKA_TLS_CERT_FILE, KAFKA_TLS_KEY_FILE  client certificate and key (mutual TLS)
  DATABASE_URL               PostgreSQL connection string (required by Postgres sinks)
  DRAIN_OLD_EVENTS           a new consumer group starts at the earliest offset (true, default) or the latest
  SFM_HELD_AFTER_SECONDS     a sink retrying the same error this long is shown as held in the status line and
                             in sfm_sink_held_seconds (default 60)
  OTEL_EXPORTER_OTLP_ENDPOINT  export traces over OTLP/HTTP (e.g. http://127.0.0.1:4318)
  LOG_LEVEL                  debug | info | warn | error (default info)

Exit codes: 0 stopped cleanly (signal or --until-idle), 1 fatal error, 2 usage or configuration error (brokers or
a database that do not answer at start, too: one line each).
`

const EXIT_FATAL = 1
const DEFAULT_CONSOLE_PORT = 7070
const EXIT_USAGE = 2

function fail(message: string, code: number): never {
  process.stderr.write(`error: ${message}\n`)
  if (code === EXIT_USAGE) process.stderr.write('Run with --help for usage.\n')
  process.exit(code)
}

function parseCli(argv: string[]) {
  // `--until-idle` takes an optional value: rewrite the bare flag so parseArgs sees `--until-idle=5`.
  // `--console` takes an optional port: `--console 8080` and `--console=8080` give one, a bare flag the default.
  const args: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--until-idle') args.push('--until-idle=5')
    else if (a === '--console') {
      const next = argv[i + 1]
      if (next !== undefined && /^\d+$/.test(next)) {
        args.push(`--console=${next}`)
        i++
      } else args.push(`--console=${DEFAULT_CONSOLE_PORT}`)
    } else args.push(a)
  }
  let parsed: ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>
  const options = {
    'until-idle': { type: 'string' },
    'metrics-port': { type: 'string' },
    'metrics-host': { type: 'string' },
    'status-interval': { type: 'string' },
    demo: { type: 'string' },
    'data-dir': { type: 'string' },
    graph: { type: 'boolean' },
    console: { type: 'string' },
    'console-host': { type: 'string' },
    'console-allow-writes': { type: 'boolean' },
    shadow: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' }
  } as const
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true })
  } catch (error) {
    fail(errorMessage(error), EXIT_USAGE)
  }
  const { values, positionals } = parsed
  if (values.help) {
    process.stdout.write(USAGE)
    // With a topology file: also what that topology does and reads (its leading doc comment).
    const about = positionals.length === 1 ? topologyDoc(positionals[0]!) : undefined
    if (about) process.stdout.write(`\n${positionals[0]}:\n\n${about}\n`)
    process.exit(0)
  }
  if (positionals.length !== 1) fail('expected exactly one topology file', EXIT_USAGE)
  const seconds = (name: string, value: string | undefined, fallback: number | undefined) => {
    if (value === undefined) return fallback
    const n = Number(value)
    if (!Number.isFinite(n) || n < 0) fail(`--${name} expects a number of seconds ≥ 0, got "${value}"`, EXIT_USAGE)
    return n
  }
  let metricsPort: number | undefined
  if (values['metrics-port'] !== undefined) {
    metricsPort = Number(values['metrics-port'])
    if (!Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort > 65535) {
      fail(`--metrics-port expects a port number, got "${values['metrics-port']}"`, EXIT_USAGE)
    }
  }
  let consolePort: number | undefined
  if (values.console !== undefined) {
    consolePort = Number(values.console)
    if (!Number.isInteger(consolePort) || consolePort < 0 || consolePort > 65535) {
      fail(`--console expects a port number, got "${values.console}"`, EXIT_USAGE)
    }
  }
  if (consolePort === undefined && (values['console-allow-writes'] || values['console-host'] !== undefined)) {
    fail('--console-allow-writes and --console-host go with --console', EXIT_USAGE)
  }
  if (values.shadow && (values.demo !== undefined || values['console-allow-writes'])) {
    fail(
      '--shadow writes nothing: it does not go with --demo (which feeds events) or --console-allow-writes',
      EXIT_USAGE
    )
  }
  let demo: number | undefined
  if (values.demo !== undefined) {
    demo = Number(values.demo)
    if (!Number.isInteger(demo) || demo < 1 || demo > 10_000_000) {
      fail(`--demo expects a number of events in 1..10000000, got "${values.demo}"`, EXIT_USAGE)
    }
  }
  return {
    file: positionals[0]!,
    demo,
    // A demo stops by itself once everything it fed is processed.
    untilIdleSeconds: seconds('until-idle', values['until-idle'], demo === undefined ? undefined : 2),
    statusSeconds: seconds('status-interval', values['status-interval'], 5) ?? 5,
    metricsPort,
    metricsHost: values['metrics-host'],
    dataDir: values['data-dir'],
    graph: values.graph === true,
    consolePort,
    consoleHost: values['console-host'],
    consoleAllowWrites: values['console-allow-writes'] === true,
    shadow: values.shadow === true
  }
}

/** The leading doc comment of a topology file as plain text (without the comment markers), if it has one. */
function topologyDoc(file: string): string | undefined {
  let text: string
  try {
    text = readFileSync(resolve(file), 'utf8')
  } catch {
    return undefined
  }
  const match = /^\s*\/\*\*([\s\S]*?)\*\//.exec(text)
  if (match === null) return undefined
  return match[1]!
    .split('\n')
    .map((line) => line.replace(/^\s*\* ?/, ''))
    .join('\n')
    .trim()
}

async function loadTopology(file: string): Promise<Topology<unknown>> {
  const path = resolve(file)
  if (!existsSync(path)) fail(`topology file not found: ${file}`, EXIT_USAGE)
  let exported: unknown
  try {
    const module = (await import(pathToFileURL(path).href)) as { default?: unknown }
    exported = module.default
    // Building the topology opens what it needs first (e.g. the locked PGlite folder): its config errors are exit 2.
    if (typeof exported === 'function') exported = await (exported as () => unknown)()
  } catch (error) {
    if (error instanceof SfmError && error.kind === ErrorKinds.FATAL) fail(error.message, EXIT_USAGE)
    throw error
  }
  if (!isTopology(exported)) {
    fail(`${file} must default-export a topology made with defineTopology() (or a function returning one)`, EXIT_USAGE)
  }
  return exported
}

/** One status line; the rate only when there is a previous sample, the lag only when it was measured. */
function formatStatus(stats: RuntimeStats, previous: RuntimeStats | undefined, seconds: number): string {
  const rate = previous ? ` (${Math.round((stats.consumed - previous.consumed) / seconds)}/s)` : ''
  const lag = stats.lag === undefined ? '' : ` lag ${stats.lag}`
  const kb = Math.round(stats.inFlightBytes / 1024)
  const held = stats.sourceHeld
  const source = held
    ? ` source HELD ${Math.round(held.heldMs / 1000)} s (reconnecting, attempt ${held.attempts}: ${held.reason})`
    : ''
  return `consumed ${stats.consumed}${rate} done ${stats.done} in-flight ${stats.inFlight} (${kb} KiB)${lag} dlq ${stats.deadLettered} dropped ${stats.dropped} commits ${stats.commits} retries ${stats.sinkRetries}${source}${formatHeld(stats.sinksHeld)}`
}

/** ` kv applied 3, fenced 1; dlq 2 (validate 2)` — what a shadow run would have done so far. */
function formatShadow(shadow: ShadowReport | undefined): string {
  if (shadow === undefined) return ''
  const branches = Object.entries(shadow.branches).map(
    ([name, counts]) =>
      `${name} ${
        Object.entries(counts)
          .map(([what, n]) => `${what} ${n}`)
          .join(', ') || 'nothing yet'
      }`
  )
  const stages = Object.entries(shadow.deadLetters)
  const dlq = stages.reduce((sum, [, n]) => sum + n, 0)
  const byStage = stages.length === 0 ? '' : ` (${stages.map(([stage, n]) => `${stage} ${n}`).join(', ')})`
  return ` ${branches.join('; ')}; dlq ${dlq}${byStage}`
}

/** Points the shadow group at where the real group stands and says so; a refusal is one line, exit 2. */
async function startShadow(group: ShadowGroup, log: ReturnType<typeof createLogger>): Promise<void> {
  const access = openLogAccess()
  try {
    const starts = await seedShadowGroup(access, group)
    const fromReal = starts.filter((s) => s.fromRealGroup).length
    log.info(
      `shadow run: consuming as group ${group.groupId}; the real group ${group.realGroupId} is read, never committed. ` +
        `Starting at its committed offsets on ${fromReal} of ${starts.length} partition(s)` +
        (fromReal < starts.length
          ? ` (the rest at their ${group.drainOldEvents ? 'start' : 'end'}, as it would)`
          : '') +
        '. Sinks run dry (PostgreSQL: rolled back), dead letters are counted'
    )
  } catch (error) {
    if (error instanceof SfmError && error.kind === ErrorKinds.FATAL) fail(`--shadow: ${error.message}`, EXIT_USAGE)
    throw error
  } finally {
    await access.close().catch(() => {})
  }
}

async function main(): Promise<void> {
  const cli = parseCli(process.argv.slice(2))
  // Every command takes --data-dir; the topology and its sinks read SFM_DATA_DIR.
  if (cli.dataDir !== undefined) process.env.SFM_DATA_DIR = resolve(cli.dataDir)
  // First, what this run uses and why: a stopped local stack is never used, --data-dir means the embedded stack.
  const choice = await chooseStack(process.env, { dataDir: cli.dataDir })
  createLogger('start').info(describeStack(choice))
  // Brokers or a database that are down at start are a configuration problem to fix now (exit 2, one line each),
  // not something to retry for minutes; once running, the runner rides through outages (retries, the status line's
  // held sinks). A vector store down at start stays an outage the vector branch waits for (src/sinks/vector/sink.ts).
  const unreachable = await unreachableServers(process.env, {
    origins: choice.origins,
    names: ['KAFKA_BROKERS', 'DATABASE_URL']
  })
  if (unreachable.length > 0) {
    for (const line of unreachable) process.stderr.write(`error: ${line}\n`)
    process.exit(EXIT_USAGE)
  }
  const topology = await loadTopology(cli.file)
  if (cli.graph) {
    process.stdout.write(toMermaid(topologyGraph(topology)))
    process.exit(0)
  }
  const log = createLogger(topology.name)
  if (logTarget({}) === LogTargets.KAFKA) {
    // Checked before anything connects: a half-set TLS/SASL group stops here, naming the variable (exit 2).
    try {
      log.info(`kafka connection: ${describeKafkaConnection(kafkaConnectionOptions())}`)
    } catch (error) {
      fail(errorMessage(error), EXIT_USAGE)
    }
  }

  let heldAfterSeconds: number
  try {
    heldAfterSeconds = envInt('SFM_HELD_AFTER_SECONDS', DEFAULT_HELD_AFTER_MS / 1000)
  } catch (error) {
    fail(errorMessage(error), EXIT_USAGE)
  }

  const tracing = startTracing({ serviceName: `sfm-${topology.name}` })
  let metrics: Metrics
  try {
    metrics = await createMetrics({
      topology: topology.name,
      ...(cli.metricsPort === undefined ? {} : { port: cli.metricsPort }),
      ...(cli.metricsHost === undefined ? {} : { host: cli.metricsHost })
    })
  } catch (error) {
    fail(errorMessage(error), EXIT_USAGE)
  }
  const observer = telemetryObserver(metrics)
  const demo = cli.demo === undefined ? undefined : await feedDemo(cli.demo)
  if (demo) log.info(`demo: fed ${cli.demo} memory events to the source`)
  // The console's recorder reads the runtime's stats(); the runtime is made after it, so it reads through this.
  let statsOf: () => RuntimeStats = () => {
    throw new Error('runtime not started')
  }
  let nodesOf: () => NodeCounts = () => ({ passed: {}, branches: {} })
  const recorder =
    cli.consolePort === undefined
      ? undefined
      : new ConsoleRecorder(topology, () => statsOf(), { nodes: () => nodesOf() })
  const observed = recorder ? combineObservers(observer, recorder) : observer
  let runtime: Runtime
  try {
    runtime = new Runtime(topology, {
      observer: demo ? demo.wrap(observed) : observed,
      logger: log,
      heldAfterMs: heldAfterSeconds * 1000,
      ...(cli.untilIdleSeconds === undefined ? {} : { untilIdleMs: cli.untilIdleSeconds * 1000 }),
      ...(cli.shadow ? { shadow: true } : {})
    })
  } catch (error) {
    if (error instanceof SfmError && error.kind === ErrorKinds.FATAL) fail(error.message, EXIT_USAGE)
    throw error
  }
  if (runtime.shadowGroup) await startShadow(runtime.shadowGroup, log)
  statsOf = () => runtime.stats()
  nodesOf = () => runtime.nodeCounts()
  let consoleServer: ConsoleServer | undefined
  let consoleReader: TopicReader | undefined
  if (recorder && cli.consolePort !== undefined) {
    // The DLQ and memory.audit on the log the runner reads: Kafka when KAFKA_BROKERS is set, else the embedded log.
    const reader = topicReaderFromEnv()
    consoleReader = reader
    const dlqTopic = topicName('memory.dlq')
    try {
      consoleServer = await startConsole({
        recorder,
        reader,
        dlqTopic,
        memory: memorySourcesOf(topology, reader),
        port: cli.consolePort,
        ...(cli.consoleHost === undefined ? {} : { host: cli.consoleHost }),
        allowWrites: cli.consoleAllowWrites,
        // Redrive only behind --console-allow-writes (the server refuses it without, too).
        ...(cli.consoleAllowWrites ? { redrive: logRedrive(dlqTopic, process.env, log) } : {}),
        logger: log
      })
    } catch (error) {
      fail(`console: cannot listen on port ${cli.consolePort}: ${errorMessage(error)}`, EXIT_USAGE)
    }
    log.info(`console: ${consoleServer.url} (${cli.consoleAllowWrites ? 'writes allowed' : 'read-only'})`)
  }
  metrics.setInflight(() => {
    const s = runtime.stats()
    return { messages: s.inFlight, bytes: s.inFlightBytes }
  })
  metrics.setHeld(() => runtime.heldSeconds())

  log.info(`source: ${topology.source.description}`)
  log.info(
    `branches: ${Object.entries(topology.branches)
      .map(([n, b]) => `${n} → ${b.sink.kind}`)
      .join(', ')}`
  )
  log.info(`dead letters: ${cli.shadow ? 'counted, not written (shadow run)' : topology.deadLetter.description}`)
  if (metrics.address) log.info(`metrics: http://${metrics.address.address}:${metrics.address.port}/metrics`)
  if (tracing.enabled) log.info('traces: exported over OTLP')

  let signals = 0
  const onSignal = (signal: NodeJS.Signals) => {
    signals++
    if (signals > 1) {
      log.warn(`${signal} again: exiting now without draining`)
      process.exit(130)
    }
    log.info(`${signal}: stopping (draining in-flight work, then committing)`)
    runtime.stop()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  let previous: RuntimeStats | undefined
  const status =
    cli.statusSeconds > 0
      ? setInterval(() => {
          const stats = runtime.stats()
          log.info(
            formatStatus(stats, previous, cli.statusSeconds) +
              (stats.shadow ? ` shadow:${formatShadow(stats.shadow)}` : '')
          )
          previous = stats
        }, cli.statusSeconds * 1000)
      : undefined

  let exitCode = 0
  try {
    const summary = await runtime.run()
    log.info(`stopped (${summary.reason}): ${formatStatus(summary, undefined, 1)}`)
    if (summary.shadow) {
      log.info(`shadow run, nothing written — it would have done:${formatShadow(summary.shadow)}`)
      process.stdout.write(
        `${JSON.stringify({ shadow: summary.shadow, consumed: summary.consumed, done: summary.done, reason: summary.reason })}\n`
      )
    }
    if (demo) process.stdout.write(formatReport(await demo.report(summary, cli.demo ?? 0)))
  } catch (error) {
    const kind = kindOf(error)
    const configProblem = error instanceof SfmError && error.kind === ErrorKinds.FATAL && error.code === 'SFM_CONFIG'
    log.error(`${configProblem ? 'configuration error' : `stopped on a ${kind} error`}: ${errorMessage(error)}`)
    exitCode = configProblem ? EXIT_USAGE : EXIT_FATAL
  } finally {
    if (status) clearInterval(status)
    recorder?.stop()
    await consoleServer?.close().catch(() => {})
    await consoleReader?.close().catch(() => {})
    observer.dispose()
    await metrics.close().catch(() => {})
    await tracing.shutdown().catch(() => {})
  }
  process.exit(exitCode)
}

main().catch((error) => {
  // One line on a terminal; the stack (and an AggregateError's parts) only at LOG_LEVEL=debug.
  process.stderr.write(`error: ${describeError(error)}\n`)
  if (process.env.LOG_LEVEL === 'debug' && error instanceof Error) process.stderr.write(`${error.stack}\n`)
  else process.stderr.write('(LOG_LEVEL=debug prints the details)\n')
  process.exit(EXIT_FATAL)
})
