/**
 * `npm run rehearse -- [--size small|full]`: RUNBOOK.md end to end on the local stack against a synthetic legacy
 * SomaFractalMemory — a legacy `kv_store` in PostgreSQL (a schema of its own, written by an app role), the legacy
 * app's old events on `memory.events`, and app writes from Python (`npm run traffic -- --via python`). Each step runs
 * the runbook's commands (the project's CLIs as child processes, as an operator would) and then its check; one line
 * per step (commands, check, seconds, result), exit 1 at the first failed check. Everything it makes has names of
 * its own (topic prefix, table, groups, schema, role) and is removed at the end (`--keep` keeps it).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { closeSync, existsSync, openSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Admin } from '@platformatic/kafka'
import pg from 'pg'
import { chooseStack, describeStack } from '../src/config.ts'
import { describeError } from '../src/errors.ts'
import { kafkaConnectionOptions, parseBrokers } from '../src/kafka/connection.ts'
import { TrafficPlan } from '../src/memory/legacy/traffic.ts'
import type { InspectReport } from '../src/ops/dlq.ts'
import { REPO_ROOT } from './stack/config.ts'
import { type RunResult, run } from './stack/proc.ts'

const USAGE = `Usage: npm run rehearse -- [--size small|full] [--pattern dual-write|outbox] [--keep]

Runs RUNBOOK.md's five steps end to end on the local stack (KAFKA_BROKERS and DATABASE_URL, else the running
npm run stack -- up) against a synthetic legacy system: a kv_store of its own in PostgreSQL, written by an app role,
the legacy app's old events on memory.events, and app traffic from the Python client (npm run python-setup first).
Prints the commands of each step, then one line per step: check, seconds, result. Exit 1 at the first failed check.

Options:
  --size small|full    small (default): 300 legacy memories, traffic 50 writes/s for 6 s, well under 2 minutes;
                       full: 200,000 memories, traffic 1,000 writes/s during steps 3-4, kill -9 of each consumer
  --pattern P          the app's producer pattern in step 3: dual-write (default) or outbox
  --keep               keep the topics, tables, schema, role and data folder (their names are printed)
  -h, --help           this help

Exit codes: 0 every check passed, 1 a check failed (the step's line says which), 2 usage or configuration error.`

const SIZES = {
  small: { memories: 300, ids: 360, rate: 50, trafficSeconds: 6, legacyEvents: 20, poison: 3, kill: false, wait: 90 },
  full: {
    memories: 200_000,
    ids: 220_000,
    rate: 1000,
    trafficSeconds: 180,
    legacyEvents: 1000,
    poison: 3,
    kill: true,
    wait: 1800
  }
} as const
type Size = keyof typeof SIZES

/** The legacy mirror (issue 19): step 4 uses it when it is in the tree, and says it is missing otherwise. */
const MIRROR = 'topologies/legacy-mirror.ts'

const PYTHON = process.env.SFM_PYTHON || join(REPO_ROOT, '.venv', 'bin', 'python')

class CheckFailed extends Error {}

type Ran = RunResult

function out(line: string): void {
  process.stdout.write(`${line}\n`)
}

/** A free TCP port on 127.0.0.1 (for a runner's --metrics-port). */
async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  server.close()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

/** A background process of the rehearsal (a topology), its log in a file of the data folder. */
interface Background {
  name: string
  child: ChildProcess
  log: string
  metricsPort: number
}

async function main(argv: string[]): Promise<number> {
  let values: { size: string; pattern: string; keep: boolean; help: boolean }
  try {
    ;({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        size: { type: 'string', default: 'small' },
        pattern: { type: 'string', default: 'dual-write' },
        keep: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false }
      }
    }))
  } catch (error) {
    process.stderr.write(`rehearse: ${describeError(error)}\nRun with --help for usage.\n`)
    return 2
  }
  if (values.help) {
    out(USAGE)
    return 0
  }
  if (values.size !== 'small' && values.size !== 'full') {
    process.stderr.write(`rehearse: --size: expected small or full, got "${values.size}"\n`)
    return 2
  }
  if (values.pattern !== 'dual-write' && values.pattern !== 'outbox') {
    process.stderr.write(`rehearse: --pattern: expected dual-write or outbox, got "${values.pattern}"\n`)
    return 2
  }
  const size = SIZES[values.size as Size]
  const pattern = values.pattern
  const choice = await chooseStack(process.env)
  process.stderr.write(`rehearse: ${describeStack(choice)}\n`)
  if (!process.env.KAFKA_BROKERS || !process.env.DATABASE_URL) {
    process.stderr.write(
      'rehearse: needs Kafka and PostgreSQL (the Python app publishes to Kafka): set KAFKA_BROKERS and DATABASE_URL, or start npm run stack -- up\n'
    )
    return 2
  }
  if (!existsSync(PYTHON)) {
    process.stderr.write(`rehearse: no Python with sfm_events at ${PYTHON}: run \`npm run python-setup\`\n`)
    return 2
  }
  const databaseUrl = process.env.DATABASE_URL
  const brokers = parseBrokers(process.env.KAFKA_BROKERS)

  // Names of this run's own.
  const tag = randomBytes(4).toString('hex')
  const prefix = `rehearse-${tag}.`
  const table = `rehearse_${tag}_memories`
  const schema = `rehearse_${tag}_legacy`
  const appRole = `rehearse_${tag}_app`
  const memoryGroup = `rehearse-${tag}-memory`
  const mirrorGroup = `rehearse-${tag}-mirror`
  const dataDir = await mkdtemp(join(tmpdir(), `sfm-rehearse-${tag}-`))
  const legacyUrl = urlWithOptions(databaseUrl, `-c search_path=${schema}`)
  const appUrl = urlWithOptions(databaseUrl, `-c search_path=${schema} -c role=${appRole}`)
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SFM_TOPIC_PREFIX: prefix,
    SFM_MEMORY_TABLE: table,
    SFM_MEMORY_GROUP: memoryGroup,
    SFM_DATA_DIR: dataDir,
    LOG_LEVEL: 'info'
  }
  const shown = (text: string) =>
    text.replaceAll(appUrl, '$APP_URL').replaceAll(legacyUrl, '$LEGACY_URL').replaceAll(databaseUrl, '$DATABASE_URL')
  out(
    `rehearse: size ${values.size}, pattern ${pattern}; topics ${prefix}*, table ${table}, legacy schema ${schema}, app role ${appRole}, data ${dataDir}`
  )
  out('rehearse: LEGACY_URL = DATABASE_URL with search_path=<legacy schema>; APP_URL = the same as the app role')

  const admin = new pg.Client({ connectionString: databaseUrl })
  admin.on('error', () => {})
  await admin.connect()
  const background: Background[] = []

  /** Runs a CLI of the project (`npm run <script> -- args`) to its end, printing the command. */
  const cli = async (script: string, args: string[], extra: NodeJS.ProcessEnv = {}, input?: string): Promise<Ran> => {
    const file = script === 'start' ? 'src/cli/start.ts' : `src/cli/${script}.ts`
    out(`  $ ${shown(`npm run ${script} -- ${args.join(' ')}`)}`)
    return run(process.execPath, [file, ...args], {
      cwd: REPO_ROOT,
      env: { ...env, ...extra },
      ...(input === undefined ? {} : { input })
    })
  }

  /** Starts a topology in the background (`npm start -- <file>`), its log in <data dir>/<name>.log. */
  const start = async (name: string, topology: string, extra: NodeJS.ProcessEnv): Promise<Background> => {
    const metricsPort = await freePort()
    const log = join(dataDir, `${name}.log`)
    const vars = Object.entries(extra)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')
    out(`  $ ${shown(`${vars} npm start -- ${topology} --metrics-port ${metricsPort} &`)}   (log: ${log})`)
    const fd = openSync(log, 'a')
    const child = spawn(
      process.execPath,
      ['--max-semi-space-size=128', 'src/cli/start.ts', topology, '--metrics-port', String(metricsPort)],
      { cwd: REPO_ROOT, env: { ...env, ...extra }, stdio: ['ignore', 'ignore', fd] }
    )
    closeSync(fd) // the child has its own copy
    const handle = { name, child, log, metricsPort }
    background.push(handle)
    return handle
  }

  /** Until the runner answers on its metrics port with consumer figures (it started and was assigned partitions). */
  const serving = async (runner: Background, seconds: number): Promise<boolean> => {
    const deadline = Date.now() + seconds * 1000
    while (Date.now() < deadline) {
      if (runner.child.exitCode !== null) return false
      const text = await fetch(`http://127.0.0.1:${runner.metricsPort}/metrics`)
        .then((r) => (r.ok ? r.text() : ''))
        .catch(() => '')
      if (text.includes('sfm_committed_offset') || text.includes('sfm_consumer_lag')) return true
      await new Promise((resolve) => setTimeout(resolve, 500))
    }
    return false
  }

  const stop = async (runner: Background): Promise<number | null> => {
    if (runner.child.exitCode !== null) return runner.child.exitCode
    out(`  $ kill -TERM <pid of ${runner.name}>   (drains, commits, exits 0)`)
    const exited = once(runner.child, 'exit')
    runner.child.kill('SIGTERM')
    const [code] = (await exited) as [number | null]
    background.splice(background.indexOf(runner), 1)
    return code
  }

  /** Runs parity until it exits 0 (the topology drained) or `seconds` pass; the last run. */
  const parityUntilZero = async (seconds: number, args: string[] = []): Promise<Ran> => {
    const deadline = Date.now() + seconds * 1000
    for (let first = true; ; first = false) {
      const ran = first
        ? await cli('parity', ['--legacy-url', legacyUrl, ...args])
        : await runQuiet('parity', ['--legacy-url', legacyUrl, ...args])
      if (ran.code === 0 || ran.code === 2 || Date.now() > deadline) return ran
      await new Promise((resolve) => setTimeout(resolve, 2000))
    }
  }
  const runQuiet = (script: string, args: string[]): Promise<Ran> =>
    run(process.execPath, [`src/cli/${script}.ts`, ...args], { cwd: REPO_ROOT, env })

  const lastLine = (text: string) =>
    text
      .trim()
      .split('\n')
      .filter((l) => l.trim() !== '')
      .at(-1) ?? ''
  const firstLine = (text: string) => text.trim().split('\n')[0] ?? ''

  /** One step: its commands (`body`, which throws CheckFailed), then its line. */
  let stepNumber = 0
  const step = async (title: string, check: string, body: () => Promise<string | undefined>) => {
    stepNumber++
    const label = stepNumber === 0 ? 'setup' : `step ${stepNumber}/5`
    out(`[${label}] ${title}`)
    const began = performance.now()
    let result: string
    let ok = true
    try {
      result = `ok${await body().then((note) => (note ? ` (${note})` : ''))}`
    } catch (error) {
      ok = false
      result = `FAILED: ${shown(describeError(error))}`
    }
    const seconds = ((performance.now() - began) / 1000).toFixed(1)
    out(`[${label}] ${title} | check: ${shown(check)} | ${seconds} s | ${result}`)
    if (!ok) throw new CheckFailed(result)
  }
  const expect = (ran: Ran, code: number, what: string) => {
    if (ran.code !== code) {
      throw new CheckFailed(
        `${what} exited ${ran.code}, expected ${code}: ${lastLine(ran.stderr) || lastLine(ran.stdout)}`
      )
    }
  }

  let code = 0
  try {
    stepNumber = -1
    await step(
      'synthetic legacy system: kv_store with legacy memories, an app role that writes it',
      `SELECT count(*) FROM kv_store WHERE key LIKE '%:data' = ${size.memories}`,
      async () => {
        await admin.query(`CREATE SCHEMA "${schema}"`)
        await admin.query(`CREATE TABLE "${schema}".kv_store (key TEXT PRIMARY KEY, value JSONB NOT NULL)`)
        await admin.query(`CREATE ROLE "${appRole}" NOLOGIN`)
        await admin.query(`GRANT USAGE ON SCHEMA "${schema}" TO "${appRole}"`)
        await admin.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON "${schema}".kv_store TO "${appRole}"`)
        // The legacy app's history: the memories of the traffic's pool, as the app stored them, with :meta rows.
        const plan = new TrafficPlan({ ids: size.ids, namespace: 'default', seed: 1 })
        for (let from = 0; from < size.memories; from += 5000) {
          const keys: string[] = []
          const vals: string[] = []
          for (let slot = from; slot < Math.min(size.memories, from + 5000); slot++) {
            const key = plan.key(slot)
            keys.push(key, `${key.slice(0, -':data'.length)}:meta`)
            vals.push(JSON.stringify(plan.value(slot, 0)), JSON.stringify({ creation_timestamp: 1_760_000_000 + slot }))
          }
          await admin.query(
            `INSERT INTO "${schema}".kv_store (key, value) SELECT k, v::jsonb FROM unnest($1::text[], $2::text[]) AS t(k, v)`,
            [keys, vals]
          )
        }
        const { rows } = await admin.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM "${schema}".kv_store WHERE key LIKE '%:data'`
        )
        if (rows[0]!.n !== size.memories) throw new CheckFailed(`${rows[0]!.n} memories`)
        return `${size.memories} memories`
      }
    )
    stepNumber = 0

    const registry = process.env.SCHEMA_REGISTRY_URL
    await step(
      'stand up the registry and import the schemas; create the topics',
      registry
        ? 'npm run schemas -- check --registry → exit 0; npm run topics -- plan → all up to date'
        : 'npm run topics -- plan → all up to date',
      async () => {
        let note: string | undefined
        if (registry) {
          expect(await cli('schemas', ['register']), 0, 'schemas register')
        } else {
          note = 'no SCHEMA_REGISTRY_URL: the registry part was not run (npm run stack -- up --registry)'
        }
        expect(await cli('topics', ['apply']), 0, 'topics apply')
        if (registry) expect(await cli('schemas', ['check', '--registry']), 0, 'schemas check --registry')
        const plan = await cli('topics', ['plan'])
        expect(plan, 0, 'topics plan')
        if (!/up to date/.test(plan.stdout) || /^[+~]/m.test(plan.stdout)) {
          throw new CheckFailed(`topics plan: ${firstLine(plan.stdout)}`)
        }
        return note
      }
    )

    // The legacy app's old events (its JSON, no key), on memory.events before any consumer of this stack.
    const history = Array.from({ length: size.legacyEvents }, (_, i) =>
      JSON.stringify({
        event_id: randomUUID(),
        id: randomUUID(),
        namespace: 'default',
        type: 'created',
        timestamp: `2025-10-13T10:00:${String(i % 60).padStart(2, '0')}.123456+00:00`,
        payload: { text: `old legacy event ${i}`, memory_type: 'episodic', coordinate: [9000 + i, 0.5] }
      })
    )
    let memory: Background | undefined
    let relay: Background | undefined
    let mirror: Background | undefined
    await step(
      'start the consumers with DRAIN_OLD_EVENTS=false (the legacy events already on memory.events are not read)',
      'curl -sf http://127.0.0.1:<metrics port>/metrics → exit 0 with sfm_consumer_lag',
      async () => {
        out(`  · the legacy app's history: ${size.legacyEvents} legacy events on ${prefix}memory.events`)
        const file = join(dataDir, 'legacy-history.jsonl')
        await writeFile(file, `${history.join('\n')}\n`)
        expect(await cli('produce', ['--topic', `${prefix}memory.events`, '--file', file]), 0, 'produce')
        memory = await start('memory', 'topologies/memory.ts', {
          DRAIN_OLD_EVENTS: 'false',
          SFM_LEGACY_EVENTS: 'upcast'
        })
        if (!(await serving(memory, 60))) throw new CheckFailed(`the memory topology is not serving: see ${memory.log}`)
        return undefined
      }
    )

    await step(
      `enable ${pattern}, backfill, synthetic traffic from the Python app, compare until parity`,
      'npm run parity -- --legacy-url $LEGACY_URL → exit 0',
      async () => {
        if (pattern === 'outbox') {
          out(`  $ psql "$LEGACY_URL" -f clients/python/sfm_events/outbox.sql; GRANT INSERT ON sfm_outbox TO the app`)
          const ddl = await readFile(join(REPO_ROOT, 'clients', 'python', 'sfm_events', 'outbox.sql'), 'utf8')
          await admin.query(`SET search_path = "${schema}"; ${ddl}; RESET search_path`)
          await admin.query(`GRANT INSERT ON "${schema}".sfm_outbox TO "${appRole}"`)
          relay = await start('relay', 'topologies/outbox-relay.ts', {
            SFM_OUTBOX_URL: databaseUrl,
            SFM_OUTBOX_TABLE: `${schema}.sfm_outbox`
          })
        }
        // The app writes through the new path from now on; the backfill then brings the state from before (at
        // version 0, it never overwrites an event of the app, whose versions are a microsecond clock).
        const trafficArgs = [
          ...['--via', 'python', '--pattern', pattern, '--rate', String(size.rate)],
          ...['--duration', String(size.trafficSeconds), '--ids', String(size.ids), '--seed', '2'],
          ...['--legacy-url', appUrl]
        ]
        const traffic = cli('traffic', trafficArgs)
        const backfill = await cli('backfill', ['--legacy-url', legacyUrl])
        expect(backfill, 0, 'backfill')
        out(`  · ${size.poison} poison records (schema-invalid events) on ${prefix}memory.events, for the DLQ check`)
        const poison = Array.from({ length: size.poison }, (_, i) => JSON.stringify({ poison: i, id: `poison-${i}` }))
        expect(
          await cli('produce', ['--topic', `${prefix}memory.events`, '--file', '-'], {}, `${poison.join('\n')}\n`),
          0,
          'produce'
        )
        if (size.kill) {
          await new Promise((resolve) => setTimeout(resolve, (size.trafficSeconds * 1000) / 2))
          for (const runner of [memory, relay]) {
            if (runner === undefined) continue
            out(`  $ kill -9 <pid of ${runner.name}>; then start it again`)
            runner.child.kill('SIGKILL')
            await once(runner.child, 'exit')
            background.splice(background.indexOf(runner), 1)
          }
          memory = await start('memory', 'topologies/memory.ts', {
            DRAIN_OLD_EVENTS: 'false',
            SFM_LEGACY_EVENTS: 'upcast'
          })
          if (relay) {
            relay = await start('relay', 'topologies/outbox-relay.ts', {
              SFM_OUTBOX_URL: databaseUrl,
              SFM_OUTBOX_TABLE: `${schema}.sfm_outbox`
            })
          }
        }
        const done = await traffic
        expect(done, 0, 'traffic')
        out(`  · ${lastLine(done.stderr).replace(/^traffic: /, 'traffic: ')}`)
        const parity = await parityUntilZero(size.wait)
        expect(parity, 0, 'parity')
        return firstLine(parity.stdout).replace(/ \(.*$/, '')
      }
    )

    await step(
      'legacy store read-only for the app; watch for discrepancies; then move the traffic (legacy mirror)',
      'an app write to kv_store → refused (exit 1); npm run parity → exit 0; npm run dlq -- inspect: only the poison; ' +
        'with the mirror: npm run parity against the mirrored kv_store → exit 0',
      async () => {
        out(`  $ psql "$LEGACY_URL" -c 'REVOKE INSERT, UPDATE, DELETE ON kv_store FROM ${appRole}'`)
        await admin.query(`REVOKE INSERT, UPDATE, DELETE ON "${schema}".kv_store FROM "${appRole}"`)
        const refused = await cli('traffic', [
          ...['--via', 'python', '--pattern', 'dual-write', '--rate', '1', '--duration', '1'],
          ...['--ids', String(size.ids), '--legacy-url', appUrl]
        ])
        if (refused.code !== 1 || !/permission denied/.test(refused.stderr)) {
          throw new CheckFailed(`an app write was not refused (exit ${refused.code}): ${lastLine(refused.stderr)}`)
        }
        const parity = await cli('parity', ['--legacy-url', legacyUrl])
        expect(parity, 0, 'parity')
        await dlqOnlyPoison(cli, size.poison)
        if (!existsSync(join(REPO_ROOT, MIRROR))) {
          out(
            '  · missing: moving the traffic off the legacy store while it stays current needs the legacy mirror ' +
              `(${MIRROR}), which is not in this tree`
          )
          return 'mirror: missing'
        }
        // The rollback path: the mirror keeps kv_store equal to memory.latest; then the app's traffic moves.
        const startMirror = () => start('mirror', MIRROR, { SFM_LEGACY_URL: legacyUrl, SFM_MIRROR_GROUP: mirrorGroup })
        mirror = await startMirror()
        if (!(await serving(mirror, 60))) throw new CheckFailed(`the legacy mirror is not serving: see ${mirror.log}`)
        const moved = cli('traffic', [
          ...['--via', 'python', '--pattern', 'events', '--rate', String(size.rate)],
          ...['--duration', String(size.trafficSeconds), '--ids', String(size.ids), '--seed', '4'],
          ...['--legacy-url', appUrl]
        ])
        if (size.kill) {
          await new Promise((resolve) => setTimeout(resolve, (size.trafficSeconds * 1000) / 2))
          out('  $ kill -9 <pid of mirror>; then start it again')
          mirror.child.kill('SIGKILL')
          await once(mirror.child, 'exit')
          background.splice(background.indexOf(mirror), 1)
          mirror = await startMirror()
        }
        const done = await moved
        expect(done, 0, 'traffic --pattern events')
        out(`  · ${lastLine(done.stderr)}`)
        const mirrored = await parityUntilZero(size.wait)
        expect(mirrored, 0, 'parity against the mirrored kv_store')
        const writes = (JSON.parse(lastLine(done.stdout)) as { writes: number }).writes
        return `mirror: kv_store current after ${writes} writes moved to the events; ${firstLine(mirrored.stdout).replace(/ \(.*$/, '')}`
      }
    )

    await step(
      'verify, then decommission the legacy write path',
      'npm run parity -- --legacy-url $LEGACY_URL --vectors → exit 0; npm run dlq -- inspect: only the poison; lag 0',
      async () => {
        if (relay !== undefined) {
          out(`  $ psql "$LEGACY_URL" -tAc 'SELECT count(*) FROM sfm_outbox'   (0: everything published)`)
          const left = await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".sfm_outbox`)
          if (left.rows[0]!.n !== 0) throw new CheckFailed(`${left.rows[0]!.n} rows still in the outbox`)
        }
        // The vector index of the embedded default is read by one process at a time: stop the consumers first
        // (the mirror last, once it has applied everything the memory topology wrote).
        for (const runner of [relay, memory]) {
          if (runner === undefined) continue
          const exit = await stop(runner)
          if (exit !== 0) throw new CheckFailed(`${runner.name} exited ${exit} on SIGTERM: see ${runner.log}`)
        }
        if (mirror !== undefined) {
          expect(await parityUntilZero(size.wait), 0, 'parity against the mirrored kv_store')
          const exit = await stop(mirror)
          if (exit !== 0) throw new CheckFailed(`mirror exited ${exit} on SIGTERM: see ${mirror.log}`)
        }
        const parity = await cli('parity', ['--legacy-url', legacyUrl, '--vectors'])
        expect(parity, 0, 'parity --vectors')
        const vectors = parity.stdout.split('\n').find((line) => line.trim().startsWith('vectors:'))
        if (vectors === undefined) throw new CheckFailed('parity --vectors printed no vectors line')
        // DRAIN_OLD_EVENTS=false: the legacy app's old events were never read (with upcast they would be memories).
        const old = await admin.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM "${table}" WHERE payload->>'text' LIKE 'old legacy event %'`
        )
        if (old.rows[0]!.n !== 0) throw new CheckFailed(`${old.rows[0]!.n} of the old legacy events were applied`)
        await dlqOnlyPoison(cli, size.poison)
        const offsets = await cli('topics', ['offsets', '--group', memoryGroup, '--json'])
        expect(offsets, 0, 'topics offsets')
        const report = JSON.parse(offsets.stdout) as { partitions: { lag: string }[] }
        const lag = report.partitions.reduce((n, p) => n + Number(p.lag), 0)
        if (lag !== 0) throw new CheckFailed(`the memory group's lag is ${lag}`)
        out(`  $ psql "$LEGACY_URL" -c 'REVOKE ALL ON kv_store FROM ${appRole}'   (the app no longer reads it)`)
        await admin.query(`REVOKE ALL ON "${schema}".kv_store FROM "${appRole}"`)
        out('  · the app keeps its event path only (its dual-write/outbox setting off: app configuration)')
        return `${firstLine(parity.stdout).replace(/ \(.*$/, '')}; ${vectors.trim()}; old legacy events read: 0`
      }
    )
    out('rehearse: every check passed')
  } catch (error) {
    if (!(error instanceof CheckFailed)) {
      out(`rehearse: ${shown(describeError(error))}`)
    }
    out(`rehearse: stopped at the first failed check; logs in ${dataDir}`)
    code = 1
  } finally {
    for (const runner of [...background]) {
      runner.child.kill('SIGKILL')
      await once(runner.child, 'exit').catch(() => {})
    }
    if (!values.keep && code === 0) {
      await cleanUp({
        admin,
        schema,
        appRole,
        table,
        prefix,
        brokers,
        dataDir,
        groups: [memoryGroup, mirrorGroup]
      })
    } else if (!values.keep) {
      await cleanUp({ admin, schema, appRole, table, prefix, brokers, dataDir: undefined, groups: [] })
    }
    await admin.end().catch(() => {})
  }
  return code
}

/** The DLQ holds exactly the poison the rehearsal produced (stage validate), nothing else. */
async function dlqOnlyPoison(cli: (script: string, args: string[]) => Promise<Ran>, poison: number): Promise<void> {
  const inspect = await cli('dlq', ['inspect', '--json'])
  if (inspect.code !== 0) throw new CheckFailed(`dlq inspect exited ${inspect.code}: ${inspect.stderr.trim()}`)
  const report = JSON.parse(inspect.stdout) as InspectReport
  const groups = report.groups
  if (report.unlabelled.count > 0) throw new CheckFailed(`${report.unlabelled.count} records without sfm.dlq.* headers`)
  const other = groups.filter((g) => g.stage !== 'validate')
  const validate = groups.filter((g) => g.stage === 'validate').reduce((n, g) => n + g.count, 0)
  if (other.length > 0 || validate !== poison) {
    throw new CheckFailed(`the DLQ holds more than the ${poison} poison records: ${JSON.stringify(groups)}`)
  }
}

function urlWithOptions(databaseUrl: string, options: string): string {
  const url = new URL(databaseUrl)
  url.searchParams.set('options', options)
  // %20, not +: libpq (the Python app) reads a + literally.
  return url.toString().replaceAll('+', '%20')
}

async function cleanUp(o: {
  admin: pg.Client
  schema: string
  appRole: string
  table: string
  prefix: string
  brokers: string[]
  dataDir: string | undefined
  groups: string[]
}): Promise<void> {
  const q = (sql: string) => o.admin.query(sql).catch(() => {})
  await q(`DROP SCHEMA IF EXISTS "${o.schema}" CASCADE`)
  await q(`DROP ROLE IF EXISTS "${o.appRole}"`)
  await q(`DROP TABLE IF EXISTS "${o.table}", "${o.table}_events_processed", "schema_migrations_${o.table}" CASCADE`)
  const kafka = new Admin({ ...kafkaConnectionOptions(), clientId: 'sfm-rehearse', bootstrapBrokers: o.brokers })
  try {
    const topics = (await kafka.listTopics()).filter((t) => t.startsWith(o.prefix))
    if (topics.length > 0) await kafka.deleteTopics({ topics })
    if (o.groups.length > 0) await kafka.deleteGroups({ groups: o.groups }).catch(() => {})
  } catch {
    // Left for the broker's retention; the names are unique.
  } finally {
    await kafka.close().catch(() => {})
  }
  if (o.dataDir !== undefined) await rm(o.dataDir, { recursive: true, force: true })
}

process.exitCode = await main(process.argv.slice(2))
