import { parseArgs } from 'node:util'
import { Admin } from '@platformatic/kafka'
import { chooseStack, describeStack, unreachableServers } from '../config.ts'
import { describeError, ErrorCodes, FatalError } from '../errors.ts'
import { explainKafkaError, kafkaConnectionOptions, probeKafka } from '../kafka/connection.ts'
import { reconcileTopics, topicSpecs } from '../kafka/topics.ts'
import { parseBrokers } from '../sources/kafka/options.ts'
import { ExitCodes, endQuietlyWhenStdoutCloses, type Io, parseCommandLine, stdio, UsageError } from './io.ts'
import { isOffsetsCommand, offsetsMain } from './offsets.ts'

const USAGE = `Usage: npm run topics -- <command> [options]

Commands:
  apply    Create missing topics, add partitions, set configs that differ (idempotent)
  plan     Same as apply --dry-run
  print    Print the topic specs as JSON (no broker needed)
  offsets --group G [--topic T] [--json]
           A consumer group's committed offset, start, end and lag per partition, and its live members
  reset-offsets --group G --to earliest|latest|<RFC 3339 time> [--topic T] [--dry-run]
           Move a group's committed offsets; refused while the group has live members (named).
           Both run on the embedded log when KAFKA_BROKERS is unset (--data-dir DIR, default SFM_DATA_DIR)

Options:
  --dry-run                  Show the diff, change nothing
  --prefix P                 Topic name prefix: P.memory.events, … (isolated sets for tests and tenants);
                             default SFM_TOPIC_PREFIX, the same rule the topologies use
  --partitions N             Partitions of memory.events and the topics keyed like it
                             (default: SFM_EVENTS_PARTITIONS or 6)
  --replication-factor N     Default: SFM_REPLICATION_FACTOR or 1; min.insync.replicas follows it
  -h, --help                 This help

Environment: KAFKA_BROKERS=host:port[,host:port] (apply, plan); TLS and SASL: KAFKA_TLS, KAFKA_TLS_CA_FILE,
KAFKA_TLS_CERT_FILE, KAFKA_TLS_KEY_FILE, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD[_FILE]

Diff lines: "+ create …", "~ alter …", "= … up to date", "! …" (refused: nothing is applied).
Exit codes: 0 done / up to date, 1 refused or failed, 2 usage error or brokers that do not answer.`

export { ExitCodes } from './io.ts'

/** `localStack`: fill KAFKA_BROKERS from the running local dev stack when it is unset (as a command). */
export async function main(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  io: Io = stdio,
  localStack = false
): Promise<number> {
  if (isOffsetsCommand(argv) && !argv.includes('--help') && !argv.includes('-h')) {
    return offsetsMain(argv, env, io, localStack)
  }
  const parsed = parseCommandLine('topics', USAGE, io, () => parse(argv))
  if (typeof parsed === 'number') return parsed
  try {
    const specs = topicSpecs({
      prefix: parsed.prefix,
      partitions: parsed.partitions,
      replicationFactor: parsed.replicationFactor,
      env
    })
    if (parsed.command === 'print') {
      io.out(JSON.stringify(specs, null, 2))
      return ExitCodes.OK
    }
    const choice = localStack ? await chooseStack(env) : undefined
    if (choice) io.err(`topics: ${describeStack(choice, { database: false })}`)
    const brokers = parseBrokers(env.KAFKA_BROKERS)
    if (brokers.length === 0) {
      throw new FatalError('KAFKA_BROKERS is not set: export KAFKA_BROKERS=host:port[,host:port]', {
        code: ErrorCodes.CONFIG
      })
    }
    // Brokers that do not answer: one line and exit 2, rather than the client's retries and its error dump.
    const unreachable = await unreachableServers(env, {
      names: ['KAFKA_BROKERS'],
      ...(choice ? { origins: choice.origins } : {})
    })
    if (unreachable.length > 0) {
      for (const line of unreachable) io.err(`topics: ${line}`)
      return ExitCodes.USAGE
    }
    const admin = new Admin({ ...kafkaConnectionOptions(env), clientId: 'sfm-topics', bootstrapBrokers: brokers })
    try {
      const dryRun = parsed.dryRun || parsed.command === 'plan'
      const context = { brokers, doing: 'reconciling topics' }
      await probeKafka(admin, [], context)
      const result = await reconcileTopics(admin, specs, { dryRun }).catch((error: unknown) => {
        throw explainKafkaError(error, context) ?? error
      })
      for (const line of result.lines) io.out(line)
      if (!result.ok) {
        io.err('topics: refused; nothing was changed')
        return ExitCodes.FAILED
      }
      if (dryRun) io.err('topics: dry run; nothing was changed')
      return ExitCodes.OK
    } finally {
      await admin.close().catch(() => {})
    }
  } catch (error) {
    io.err(`topics: ${describeError(error)}`)
    return ExitCodes.FAILED
  }
}

function parse(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      'dry-run': { type: 'boolean', default: false },
      prefix: { type: 'string' },
      partitions: { type: 'string' },
      'replication-factor': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
  if (values.help) return { help: true as const }
  if (positionals.length !== 1)
    throw new UsageError('expected exactly one command: apply, plan, print, offsets or reset-offsets')
  const command = positionals[0]
  if (command !== 'apply' && command !== 'plan' && command !== 'print') {
    throw new UsageError(`unknown command "${command}" (expected apply, plan, print, offsets or reset-offsets)`)
  }
  const flags = {
    prefix: values.prefix,
    partitions: integerFlag(values.partitions, '--partitions'),
    replicationFactor: integerFlag(values['replication-factor'], '--replication-factor')
  }
  // Bad flag values are usage errors (exit 2); the environment is checked later (exit 1).
  topicSpecs({ ...flags, env: {} })
  return { help: false as const, command, dryRun: values['dry-run'], ...flags }
}

function integerFlag(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new UsageError(`${flag}: expected a positive integer, got "${value}"`)
  return Number(value)
}

if (import.meta.main) {
  endQuietlyWhenStdoutCloses()
  // As a command, fall back to the running local dev stack (`npm run stack -- up`) when KAFKA_BROKERS is unset.
  process.exitCode = await main(process.argv.slice(2), process.env, stdio, true)
}
