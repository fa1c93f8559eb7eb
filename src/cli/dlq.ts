import { parseArgs } from 'node:util'
import { topicName } from '../config.ts'
import { describeError } from '../errors.ts'
import { TopicNames } from '../kafka/topics.ts'
import { defaultRedriveOptions, type InspectReport, inspectDlq, type RedriveReport, redriveDlq } from '../ops/dlq.ts'
import { openLogAccess } from '../ops/log.ts'
import { ExitCodes, endQuietlyWhenStdoutCloses, type Io, parseCommandLine, rfc3339Ms, stdio, UsageError } from './io.ts'
import { useServices } from './services.ts'

const USAGE = `Usage: npm run dlq -- <command> [options]

Commands:
  inspect    Count the dead letters by stage × error class: oldest, newest, samples with their sfm.dlq.* headers
  redrive    Send the selected letters back to the source topic named in their headers

Options:
  --since D            Only letters written in the last D (30s, 15m, 2h, 7d) or since an RFC 3339 time
  --stage S            Only letters of this stage (sfm.dlq.stage)
  --error-code C       Only letters with this error code (sfm.dlq.error.code, e.g. SFM_VALIDATION)
  --topic T            The dead-letter topic (default SFM_TOPIC_PREFIX + memory.dlq)
  --json               inspect, redrive: one JSON object on stdout instead of the table
  --samples N          inspect: letters shown per stage × error class (default 3)
  --dry-run            redrive: say what would be sent, send and commit nothing
  --max-redrives N     redrive: refuse letters already redriven N times (default ${defaultRedriveOptions.maxRedrives})
  --data-dir DIR       Embedded log folder when KAFKA_BROKERS is unset (default SFM_DATA_DIR, ./.sfm-data)
  -h, --help           This help

A redriven record carries the original key, value and headers (less sfm.dlq.*) plus sfm.redrive.dlq.topic,
sfm.redrive.dlq.partition, sfm.redrive.dlq.offset, sfm.redrive.at and sfm.redrive.count. What was redriven is
remembered per stage × error code in consumer groups ${defaultRedriveOptions.groupPrefix}.<dlq topic>.<stage>.<code>, so a second
run sends nothing twice; letters older than --since are passed over for good by those groups (reset one with
\`npm run topics -- reset-offsets\` to redrive them). Letters stored cut down (sfm.dlq.truncated) are never redriven.

Environment: KAFKA_BROKERS=host:port[,host:port] (else the embedded log), TLS and SASL as for npm run produce.
Exit codes: 0 done, 1 refused or failed (nothing was sent), 2 usage error or brokers that do not answer.`

export { ExitCodes } from './io.ts'

type Parsed =
  | { help: true }
  | {
      help: false
      command: 'inspect' | 'redrive'
      since: number | undefined
      stage: string | undefined
      errorCode: string | undefined
      topic: string | undefined
      json: boolean
      samples: number
      dryRun: boolean
      maxRedrives: number
      dataDir: string | undefined
    }

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** `15m`, `2h`, `7d` before `now`, or an RFC 3339 time, as ms since the epoch. */
export function parseSince(value: string, now = Date.now()): number {
  const duration = /^(\d+)(ms|s|m|h|d)$/.exec(value)
  if (duration) return now - Number(duration[1]) * UNITS[duration[2]!]!
  const time = rfc3339Ms(value)
  if (time !== undefined) return time
  throw new UsageError(`--since: expected a duration (30s, 15m, 2h, 7d) or an RFC 3339 time, got "${value}"`)
}

function parse(argv: string[]): Parsed {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      since: { type: 'string' },
      stage: { type: 'string' },
      'error-code': { type: 'string' },
      topic: { type: 'string' },
      json: { type: 'boolean', default: false },
      samples: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      'max-redrives': { type: 'string' },
      'data-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
  if (values.help) return { help: true }
  if (positionals.length !== 1) throw new UsageError('expected exactly one command: inspect or redrive')
  const command = positionals[0]
  if (command !== 'inspect' && command !== 'redrive') {
    throw new UsageError(`unknown command "${command}" (expected inspect or redrive)`)
  }
  for (const flag of ['stage', 'error-code', 'topic', 'data-dir'] as const) {
    if (values[flag] === '') throw new UsageError(`--${flag} must not be empty`)
  }
  if (command === 'inspect' && (values['dry-run'] || values['max-redrives'] !== undefined)) {
    throw new UsageError('--dry-run and --max-redrives are for redrive')
  }
  if (command === 'redrive' && values.samples !== undefined) throw new UsageError('--samples is for inspect')
  return {
    help: false,
    command,
    since: values.since === undefined ? undefined : parseSince(values.since),
    stage: values.stage,
    errorCode: values['error-code'],
    topic: values.topic,
    json: values.json,
    samples: integerFlag(values.samples, '--samples', 0) ?? 3,
    dryRun: values['dry-run'],
    maxRedrives: integerFlag(values['max-redrives'], '--max-redrives', 1) ?? defaultRedriveOptions.maxRedrives,
    dataDir: values['data-dir']
  }
}

function integerFlag(value: string | undefined, flag: string, min: number): number | undefined {
  if (value === undefined) return undefined
  if (!/^\d+$/.test(value) || Number(value) < min) {
    throw new UsageError(`${flag}: expected an integer ≥ ${min}, got "${value}"`)
  }
  return Number(value)
}

/** `localStack`: fill unset variables from the running local dev stack (as a command). */
export async function main(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  io: Io = stdio,
  localStack = false
): Promise<number> {
  const parsed = parseCommandLine('dlq', USAGE, io, () => parse(argv))
  if (typeof parsed === 'number') return parsed
  let access: ReturnType<typeof openLogAccess> | undefined
  try {
    const services = { localStack, dataDir: parsed.dataDir, names: ['KAFKA_BROKERS'] as const }
    if (!(await useServices('dlq', env, io, services))) return ExitCodes.USAGE
    access = openLogAccess({ env, ...(parsed.dataDir === undefined ? {} : { dataDir: parsed.dataDir }) })
    const topic = parsed.topic ?? topicName(TopicNames.DLQ, env)
    const selection = { since: parsed.since, stage: parsed.stage, errorCode: parsed.errorCode }
    io.err(`dlq: ${parsed.command} ${topic} on ${access.description}`)
    if (parsed.command === 'inspect') {
      const report = await inspectDlq(access, { topic, samples: parsed.samples, ...selection })
      if (parsed.json) io.out(JSON.stringify(report))
      else printInspect(report, io)
      if (report.unlabelled.count > 0) {
        io.err(
          `dlq: ${report.unlabelled.count} record(s) have no sfm.dlq.* headers (not written by sfm-streams' DLQ): ` +
            'redrive refuses them; leave them out with --since or --stage'
        )
      }
      return ExitCodes.OK
    }
    const report = await redriveDlq(access, {
      topic,
      ...selection,
      dryRun: parsed.dryRun,
      maxRedrives: parsed.maxRedrives,
      onProgress: (done, of) => io.err(`dlq: redriven ${done}/${of}`)
    })
    if (parsed.json) io.out(JSON.stringify(report))
    else printRedrive(report, io)
    return ExitCodes.OK
  } catch (error) {
    io.err(`dlq: ${describeError(error)}`)
    return ExitCodes.FAILED
  } finally {
    await access?.close()
  }
}

function printInspect(report: InspectReport, io: Io): void {
  if (report.total === 0) {
    io.out(`${report.topic}: no dead letters`)
    return
  }
  io.out(`${report.topic}: ${report.total} dead letter(s), oldest ${report.oldest}, newest ${report.newest}`)
  if (report.truncated > 0) io.out(`${report.truncated} stored cut down (sfm.dlq.truncated): not redrivable`)
  const rows = [
    ['STAGE', 'ERROR CLASS', 'CODE', 'COUNT', 'OLDEST', 'NEWEST'],
    ...report.groups.map((g) => [g.stage, g.errorClass, g.errorCode, String(g.count), g.oldest, g.newest])
  ]
  if (report.unlabelled.count > 0) {
    rows.push(['(no sfm.dlq.* headers)', '', '', String(report.unlabelled.count), '', ''])
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  for (const row of rows)
    io.out(
      row
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd()
    )
  for (const g of report.groups) {
    io.out('')
    io.out(`${g.stage} / ${g.errorClass} / ${g.errorCode}:`)
    for (const s of g.samples) {
      io.out(
        `  partition ${s.partition} offset ${s.offset} at ${s.timestamp} key ${s.key ?? '(none)'} (${s.valueBytes} bytes)`
      )
      for (const [k, v] of Object.entries(s.headers)) io.out(`    ${k}: ${v}`)
      io.out(`    value: ${s.value ?? '(null)'}`)
    }
  }
}

function printRedrive(report: RedriveReport, io: Io): void {
  const verb = report.dryRun ? 'would redrive' : 'redrove'
  const targets = Object.entries(report.targets)
    .map(([t, n]) => `${n} to ${t}`)
    .join(', ')
  io.out(
    `${report.topic}: ${verb} ${report.redriven} of ${report.matched} matching letter(s)${targets ? ` (${targets})` : ''}; ` +
      `already redriven ${report.alreadyRedriven}, passed over (older than --since) ${report.passedOver}, ` +
      `refused ${report.refused.length}`
  )
  for (const r of report.refused) io.out(`  refused partition ${r.partition} offset ${r.offset}: ${r.reason}`)
  if (report.dryRun) io.err('dlq: dry run; nothing was sent or committed')
}

if (import.meta.main) {
  endQuietlyWhenStdoutCloses()
  // As a command, fall back to the running local dev stack (`npm run stack -- up`) for unset variables.
  process.exitCode = await main(process.argv.slice(2), process.env, stdio, true)
}
