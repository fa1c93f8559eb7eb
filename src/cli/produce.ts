import { parseArgs } from 'node:util'
import { chooseStack, describeStack, unreachableServers } from '../config.ts'
import { describeError } from '../errors.ts'
import { defaultProduceOptions, type ProduceFileOptions, produceFile } from '../kafka/produce.ts'
import { producerTarget } from '../kafka/producer.ts'
import { ExitCodes, endQuietlyWhenStdoutCloses, type Io, parseCommandLine, stdio, UsageError } from './io.ts'

const USAGE = `Usage: npm run produce -- --topic T --file F [options]

Sends one record per line of a JSON Lines file with the idempotent acks=all producer.

Options:
  --topic T              Target topic (must exist: npm run topics -- apply)
  --file F               JSONL file, or - for stdin
  --key-field NAME       Top-level field whose value (string or number) is the record key;
                         lines without it are rejected
  --header K=V           Header added to every record (repeatable)
  --batch-size N         Lines per send request (default ${defaultProduceOptions.batchSize})
  --in-flight N          Send requests in flight (default ${defaultProduceOptions.maxInFlight}; 1 = strict order on retries)
  --max-line-bytes N     Longer lines are rejected (default ${defaultProduceOptions.maxLineBytes})
  --data-dir DIR         Embedded log folder when KAFKA_BROKERS is unset (default SFM_DATA_DIR, ./.sfm-data)
  -h, --help             This help

Lines that are not JSON, lack the key field or are too long are reported on stderr with their line number
and not sent; blank lines are skipped. A summary goes to stderr and one JSON line to stdout.

Environment: KAFKA_BROKERS=host:port[,host:port]. Without it (and without a running local stack, or with --data-dir)
records go to the embedded log, <data dir>/log.sqlite, where the framework's topics are created on first use (docs/EMBEDDED-LOG.md).
TLS and SASL: KAFKA_TLS, KAFKA_TLS_CA_FILE, KAFKA_TLS_CERT_FILE, KAFKA_TLS_KEY_FILE, KAFKA_SASL_MECHANISM,
KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE (docs/DEPLOY.md).
Exit codes: 0 all lines sent, 1 some line rejected (the others were sent) or sending failed, 2 usage error or
brokers that do not answer.`

export { ExitCodes } from './io.ts'

function parse(argv: string[]): { help: true } | { help: false; options: ProduceFileOptions } {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      topic: { type: 'string' },
      file: { type: 'string' },
      'key-field': { type: 'string' },
      header: { type: 'string', multiple: true },
      'batch-size': { type: 'string' },
      'in-flight': { type: 'string' },
      'max-line-bytes': { type: 'string' },
      'data-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
  if (values.help) return { help: true }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`)
  if (!values.topic) throw new UsageError('--topic is required')
  if (!values.file) throw new UsageError('--file is required (a path, or - for stdin)')
  if (values['key-field'] === '') throw new UsageError('--key-field must not be empty')
  // Null prototype, so that a header named `__proto__` is a header like any other.
  const headers: Record<string, string> = Object.create(null)
  for (const header of values.header ?? []) {
    const eq = header.indexOf('=')
    if (eq < 1) throw new UsageError(`--header: expected K=V, got "${header}"`)
    headers[header.slice(0, eq)] = header.slice(eq + 1)
  }
  const options: ProduceFileOptions = { topic: values.topic, file: values.file }
  if (values['key-field'] !== undefined) options.keyField = values['key-field']
  if (values.header) options.headers = headers
  if (values['data-dir'] === '') throw new UsageError('--data-dir must not be empty')
  if (values['data-dir'] !== undefined) options.dataDir = values['data-dir']
  const batchSize = integerFlag(values['batch-size'], '--batch-size')
  if (batchSize !== undefined) options.batchSize = batchSize
  const inFlight = integerFlag(values['in-flight'], '--in-flight')
  if (inFlight !== undefined) options.maxInFlight = inFlight
  const maxLineBytes = integerFlag(values['max-line-bytes'], '--max-line-bytes')
  if (maxLineBytes !== undefined) options.maxLineBytes = maxLineBytes
  return { help: false, options }
}

function integerFlag(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new UsageError(`${flag}: expected a positive integer, got "${value}"`)
  return Number(value)
}

/**
 * `stack`: fill KAFKA_BROKERS from the running local dev stack when it is unset (as a command; off for callers
 * that pass their own environment).
 */
export async function main(argv: string[], io: Io = stdio, stack: { env?: NodeJS.ProcessEnv } = {}): Promise<number> {
  const parsed = parseCommandLine('produce', USAGE, io, () => parse(argv))
  if (typeof parsed === 'number') return parsed
  const { options } = parsed
  try {
    const env = stack.env ?? process.env
    let origins: Record<string, string> | undefined
    if (stack.env !== undefined) {
      const choice = await chooseStack(stack.env, { dataDir: options.dataDir })
      io.err(`produce: ${describeStack(choice, { database: false })}`)
      origins = choice.origins
    }
    // Brokers that do not answer: one line and exit 2, rather than the client's retries and its error dump.
    const unreachable = await unreachableServers(env, { names: ['KAFKA_BROKERS'], ...(origins ? { origins } : {}) })
    if (unreachable.length > 0) {
      for (const line of unreachable) io.err(`produce: ${line}`)
      return ExitCodes.USAGE
    }
    io.err(`produce: target ${producerTarget(options)}`)
    const report = await produceFile({
      ...options,
      onReject: (r) => io.err(`produce: line ${r.line} rejected: ${r.reason}`)
    })
    const mb = (report.bytes / 1e6).toFixed(1)
    io.err(
      `produce: sent ${report.sent} to ${report.topic}, rejected ${report.rejected}, blank ${report.blank}` +
        ` in ${report.seconds} s: ${report.rate} msg/s, ${mb} MB;` +
        ` send latency p50 ${report.latencyMs.p50} ms, p99 ${report.latencyMs.p99} ms (${report.sends} sends)`
    )
    const { rejections: _, ...summary } = report
    io.out(JSON.stringify(summary))
    return report.rejected > 0 ? ExitCodes.FAILED : ExitCodes.OK
  } catch (error) {
    io.err(`produce: ${describeError(error)}`)
    return ExitCodes.FAILED
  }
}

if (import.meta.main) {
  endQuietlyWhenStdoutCloses()
  // As a command, fall back to the running local dev stack (`npm run stack -- up`) when KAFKA_BROKERS is unset.
  process.exitCode = await main(process.argv.slice(2), stdio, { env: process.env })
}
