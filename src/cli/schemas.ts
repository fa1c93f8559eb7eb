import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { describeError, FatalError } from '../errors.ts'
import { redact } from '../logger.ts'
import { checkCompatibility, checkSchemasDir, diffSchemas, formatIssue } from '../schemas/compat/index.ts'
import { createRegistryClient, type RegistryApi, registerSubjects, testSubjects } from '../schemas/registry/index.ts'
import { type Compatibility, isCompatibility, loadSubjectHistory } from '../schemas.ts'
import { ExitCodes, endQuietlyWhenStdoutCloses, type Io, parseCommandLine, stdio, UsageError } from './io.ts'

const USAGE = `Usage: npm run schemas -- <command> [options]

Versioned JSON Schemas in schemas/<subject>/v<N>.json, each subject's mode in schemas/<subject>/subject.json.

Commands:
  check                     Every subject: metadata, ajv compiles each version, and each version is compatible
                            with the earlier ones under the subject's mode (the CI gate)
  check --registry          Ask the registry whether each subject's newest local version would be accepted
  diff <subject>            What changed between two versions (default: the two newest), with verdicts
  check-pair <old> <new>    Check two schema files under --mode: prints compatible or incompatible with reasons
  register                  Register every missing subject/version (idempotent) and set each subject's rule

Options:
  --dir D                   Schemas directory (default: the repository's schemas/)
  --mode M                  check-pair: BACKWARD (default), FORWARD, FULL, their _TRANSITIVE forms, or NONE
  --from N, --to M          diff: the versions to compare
  --registry                check: use the registry instead of the offline checker
  --url U                   Registry URL (default: SCHEMA_REGISTRY_URL)
  --api A                   apicurio (native v3 API) or confluent (Confluent, Karapace, Apicurio /apis/ccompat/v7);
                            default: from the URL (…/apis/registry/v3 → apicurio; a bare host:port is probed)
  --json                    check, check-pair: print the result as JSON
  -h, --help                This help

Environment: SCHEMA_REGISTRY_URL, SCHEMA_REGISTRY_AUTHORIZATION (sent as the Authorization header).

Exit codes: 0 compatible / done, 1 incompatible, refused or failed, 2 usage error.`

export { ExitCodes } from './io.ts'

const COMMANDS = ['check', 'diff', 'check-pair', 'register'] as const
type Command = (typeof COMMANDS)[number]

function parse(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      dir: { type: 'string' },
      mode: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      registry: { type: 'boolean', default: false },
      url: { type: 'string' },
      api: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
  if (values.help) return { help: true as const }
  const [command, ...args] = positionals
  if (command === undefined) throw new UsageError(`expected a command: ${COMMANDS.join(', ')}`)
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw new UsageError(`unknown command "${command}" (expected ${COMMANDS.join(', ')})`)
  }
  const expected = command === 'diff' ? 1 : command === 'check-pair' ? 2 : 0
  if (args.length !== expected) {
    const what = command === 'diff' ? '<subject>' : command === 'check-pair' ? '<old.json> <new.json>' : 'nothing'
    throw new UsageError(`${command} takes ${what}, got ${args.length === 0 ? 'nothing' : args.join(' ')}`)
  }
  const mode = values.mode ?? 'BACKWARD'
  if (!isCompatibility(mode)) throw new UsageError(`--mode: expected BACKWARD, FORWARD, FULL, …_TRANSITIVE or NONE`)
  if (values.mode !== undefined && command !== 'check-pair') throw new UsageError('--mode only goes with check-pair')
  if (values.registry && command !== 'check') throw new UsageError('--registry only goes with check')
  if (values.api !== undefined && values.api !== 'apicurio' && values.api !== 'confluent') {
    throw new UsageError('--api: expected apicurio or confluent')
  }
  return {
    help: false as const,
    command: command as Command,
    args,
    mode,
    dir: values.dir,
    from: versionFlag(values.from, '--from'),
    to: versionFlag(values.to, '--to'),
    registry: values.registry,
    url: values.url,
    api: values.api as RegistryApi | undefined,
    json: values.json
  }
}

function versionFlag(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined
  const match = /^v?([1-9][0-9]*)$/.exec(value)
  if (match === null) throw new UsageError(`${flag}: expected a version number such as 2, got "${value}"`)
  return Number(match[1])
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env, io: Io = stdio): Promise<number> {
  const parsed = parseCommandLine('schemas', USAGE, io, () => parse(argv))
  if (typeof parsed === 'number') return parsed
  try {
    const dirOptions = parsed.dir === undefined ? {} : { dir: parsed.dir }
    switch (parsed.command) {
      case 'check':
        if (parsed.registry) return await registryCommand('check', parsed, env, io, dirOptions)
        return await checkCommand(io, dirOptions, parsed.json)
      case 'register':
        return await registryCommand('register', parsed, env, io, dirOptions)
      case 'diff':
        return await diffCommand(io, parsed.args[0]!, parsed.from, parsed.to, dirOptions)
      case 'check-pair':
        return await checkPairCommand(io, parsed.args[0]!, parsed.args[1]!, parsed.mode, parsed.json)
    }
  } catch (error) {
    io.err(`schemas: ${describeError(error)}`)
    return ExitCodes.FAILED
  }
}

async function checkCommand(io: Io, dirOptions: { dir?: string }, json: boolean): Promise<number> {
  const reports = await checkSchemasDir(dirOptions)
  const failed = reports.filter((r) => r.issues.length > 0 || r.errors.length > 0)
  if (json) {
    io.out(JSON.stringify({ compatible: failed.length === 0, subjects: reports }, null, 2))
    return failed.length === 0 ? ExitCodes.OK : ExitCodes.FAILED
  }
  for (const report of reports) {
    const versions = report.versions.length === 0 ? '' : `, v${report.versions.join(', v')}`
    const verdict = report.errors.length > 0 ? 'ERROR' : report.issues.length > 0 ? 'INCOMPATIBLE' : 'ok'
    io.out(`${report.subject} (${report.mode}${versions}): ${verdict}`)
    for (const error of report.errors) io.out(`  ! ${error}`)
    for (const issue of report.issues) io.out(`  ! ${formatIssue(issue)}`)
  }
  if (reports.length === 0) io.err('schemas: no subjects found')
  if (failed.length > 0) {
    io.err(`schemas: ${failed.length} of ${reports.length} subject(s) failed the check`)
    return ExitCodes.FAILED
  }
  return ExitCodes.OK
}

async function diffCommand(
  io: Io,
  subject: string,
  from: number | undefined,
  to: number | undefined,
  dirOptions: { dir?: string }
): Promise<number> {
  const history = await loadSubjectHistory(subject, dirOptions)
  const versions = history.versions
  const newest = to ?? versions.at(-1)!
  const older = from ?? versions.filter((v) => v < newest).at(-1)
  if (older === undefined) {
    io.out(`${subject} has only v${newest}: nothing to compare`)
    return ExitCodes.OK
  }
  const pick = (v: number) => {
    const found = history.schemas.find((s) => s.version === v)
    if (found === undefined) throw new FatalError(`${subject} has no version ${v} (known: ${versions.join(', ')})`)
    return found.schema
  }
  const changes = diffSchemas(pick(older), pick(newest))
  io.out(`${subject} v${older} → v${newest} (subject mode ${history.compatibility}): ${changes.length} change(s)`)
  const mark = (ok: boolean) => (ok ? 'ok' : 'BREAKS')
  for (const c of changes) {
    io.out(`  ${c.type} at ${c.path}  [backward ${mark(c.backward)}, forward ${mark(c.forward)}]  ${c.message}`)
  }
  return ExitCodes.OK
}

async function readSchemaFile(path: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new FatalError(`cannot read ${path}`, { cause: error })
  }
  try {
    return JSON.parse(text)
  } catch (error) {
    throw new FatalError(`${path} is not valid JSON`, { cause: error })
  }
}

async function checkPairCommand(
  io: Io,
  oldPath: string,
  newPath: string,
  mode: Compatibility,
  json: boolean
): Promise<number> {
  // allSettled, then the first failure in argument order: with Promise.all the error reported when both files are
  // unreadable depended on which read failed first.
  const [before, after] = (await Promise.allSettled([readSchemaFile(oldPath), readSchemaFile(newPath)])).map((r) => {
    if (r.status === 'rejected') throw r.reason
    return r.value
  })
  const result = checkCompatibility(mode, [{ version: oldPath, schema: before }], { version: newPath, schema: after })
  if (json) io.out(JSON.stringify(result, null, 2))
  else {
    io.out(result.compatible ? 'compatible' : 'incompatible')
    for (const issue of result.issues) io.out(`  ${issue.direction} ${issue.rule} at ${issue.path}: ${issue.message}`)
  }
  return result.compatible ? ExitCodes.OK : ExitCodes.FAILED
}

async function registryCommand(
  command: 'check' | 'register',
  parsed: { url?: string | undefined; api?: RegistryApi | undefined },
  env: NodeJS.ProcessEnv,
  io: Io,
  dirOptions: { dir?: string }
): Promise<number> {
  const url = parsed.url ?? env.SCHEMA_REGISTRY_URL
  if (url === undefined || url === '') {
    throw new FatalError('no registry: pass --url or set SCHEMA_REGISTRY_URL (`npm run stack -- up --registry`)')
  }
  const authorization = env.SCHEMA_REGISTRY_AUTHORIZATION
  const client = await createRegistryClient({
    url,
    ...(parsed.api === undefined ? {} : { api: parsed.api }),
    ...(authorization ? { headers: { authorization } } : {})
  })
  io.err(`schemas: ${client.api} API at ${redact(client.url)}`)
  const report =
    command === 'register' ? await registerSubjects(client, dirOptions) : await testSubjects(client, dirOptions)
  for (const line of report.lines) io.out(line)
  return report.ok ? ExitCodes.OK : ExitCodes.FAILED
}

if (import.meta.main) {
  endQuietlyWhenStdoutCloses()
  process.exitCode = await main(process.argv.slice(2))
}
