/**
 * kill -9 of the Python app between its legacy write and the publish, 20 times, for each integration pattern of
 * docs/PRODUCERS.md, then the memory topology and `npm run parity` on the real broker and PostgreSQL:
 * - dual-write: parity names exactly the killed memories (missing), and `backfill --repair` of its report mends them;
 * - transactional outbox: after the relay, parity is 0 without any repair.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, type TestContext, test } from 'node:test'
import { REPO_ROOT } from '../../scripts/stack/config.ts'
import { brokers, NO_KAFKA, uniqueName } from '../helpers/kafka.ts'
import { isolatedMemoryStack, legacyStore, runMemoryUntilIdle } from '../helpers/legacy.ts'
import { startRunner } from '../helpers/runner.ts'

const PYTHON = join(REPO_ROOT, '.venv', 'bin', 'python')
const KILLS = Number(process.env.SFM_APP_KILLS ?? 20)
const skip =
  (brokers() && process.env.DATABASE_URL ? false : `${NO_KAFKA}; DATABASE_URL too`) ||
  (existsSync(PYTHON) ? false : 'no .venv with sfm_events: run `npm run python-setup`')

/**
 * The app: `remember` from the example of its pattern for two memories, then a third written up to the point named
 * by the pattern — dual-write: the kv_store write committed, the publish not made; outbox: the transaction with both
 * rows committed — and "between" printed, waiting there to be killed.
 */
const APP = `
import json, os, sys
sys.path.insert(0, ${JSON.stringify(join(REPO_ROOT, 'clients', 'python', 'examples'))})
import psycopg
from sfm_events import MemoryEvents, build_event, legacy_memory_id, outbox
pattern, n = sys.argv[1], int(sys.argv[2])
coords = [(float(n), 1.0), (float(n), 2.0), (float(n), 3.0)]
conn = psycopg.connect(os.environ["LEGACY_URL"], autocommit=(pattern == "dual"))
def value(c):
    return {"text": f"memory at {c}", "memory_type": "semantic", "coordinate": list(c)}
kv = "INSERT INTO kv_store (key, value) VALUES (%s, %s::jsonb) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
if pattern == "dual":
    import dual_write
    with MemoryEvents() as events:
        for c in coords[:2]:
            dual_write.remember(conn, events, "app", c, value(c)["text"])
        with conn.cursor() as cur:
            cur.execute(kv, (legacy_memory_id("app", coords[2]) + ":data", json.dumps(value(coords[2]))))
        print("between " + legacy_memory_id("app", coords[2]), flush=True)
        sys.stdin.read()
        events.upsert("app", coords[2], value(coords[2]))
else:
    import outbox_write
    for c in coords[:2]:
        outbox_write.remember(conn, "app", c, value(c)["text"])
    event = build_event("app", coords[2], value(coords[2]))
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(kv, (legacy_memory_id("app", coords[2]) + ":data", json.dumps(value(coords[2]))))
        outbox.insert(cur, event)
    print("between " + event["id"], flush=True)
    sys.stdin.read()
`

/** Runs the app `KILLS` times and kill -9s it each time at "between"; returns the ids it was killed on. */
async function killApps(pattern: 'dual' | 'outbox', legacyUrl: string): Promise<string[]> {
  const killed: string[] = []
  for (let n = 0; n < KILLS; n++) {
    const child = spawn(PYTHON, ['-c', APP, pattern, String(n)], {
      // libpq reads %20, not the + that URLSearchParams writes for a space.
      env: { ...process.env, LEGACY_URL: legacyUrl.replaceAll('+', '%20'), KAFKA_BROKERS: brokers()!.join(',') },
      stdio: ['pipe', 'pipe', 'pipe']
    })
    let out = ''
    let err = ''
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      err += c
    })
    const exited = once(child, 'exit')
    await new Promise<void>((resolve, reject) => {
      child.stdout.setEncoding('utf8').on('data', (c: string) => {
        out += c
        if (out.includes('\n')) resolve()
      })
      exited.then(() => reject(new Error(`the app exited before "between": ${err}`)))
    })
    child.kill('SIGKILL')
    assert.equal((await exited)[1], 'SIGKILL')
    killed.push(out.trim().replace(/^between /, ''))
  }
  return killed
}

async function parity(t: TestContext, legacyUrl: string, table: string) {
  const dir = await mkdtemp(join(tmpdir(), 'sfm-app-kill-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const out = join(dir, `report-${uniqueName('p')}.json`)
  const child = spawn(
    process.execPath,
    ['src/cli/parity.ts', '--legacy-url', legacyUrl, '--table', table, '--out', out],
    {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'ignore', 'pipe']
    }
  )
  let err = ''
  child.stderr.setEncoding('utf8').on('data', (c: string) => {
    err += c
  })
  const [code] = await once(child, 'exit')
  const report = JSON.parse(await readFile(out, 'utf8')) as { ids: Record<string, string[]> }
  return { code: code as number, report, out, err }
}

describe(`kill -9 of the app between the legacy write and the publish, ${KILLS}×`, { skip }, () => {
  test('dual-write: parity names exactly the killed memories; backfill --repair mends them', {
    timeout: 300_000
  }, async (t) => {
    const stack = await isolatedMemoryStack(t)
    const legacy = await legacyStore(t, [])
    const killed = await killApps('dual', legacy.url)
    const group = uniqueName('app-kill')
    await runMemoryUntilIdle({ group })
    const before = await parity(t, legacy.url, stack.table)
    assert.equal(before.code, 1, before.err)
    assert.deepEqual([...before.report.ids.missing!].sort(), [...killed].sort())
    assert.deepEqual(
      Object.entries(before.report.ids).filter(([k, ids]) => k !== 'missing' && ids.length > 0),
      []
    )
    const repair = spawn(
      process.execPath,
      ['src/cli/backfill.ts', '--legacy-url', legacy.url, '--repair', before.out],
      {
        cwd: REPO_ROOT,
        stdio: 'ignore'
      }
    )
    assert.equal((await once(repair, 'exit'))[0], 0)
    await runMemoryUntilIdle({ group })
    const after = await parity(t, legacy.url, stack.table)
    assert.equal(after.code, 0, after.err)
  })

  test('transactional outbox: parity is 0 without any repair', { timeout: 300_000 }, async (t) => {
    const stack = await isolatedMemoryStack(t)
    const legacy = await legacyStore(t, [])
    await legacy.pool.query(await readFile(join(REPO_ROOT, 'clients', 'python', 'sfm_events', 'outbox.sql'), 'utf8'))
    const killed = await killApps('outbox', legacy.url)
    const relay = startRunner(
      'topologies/outbox-relay.ts',
      {
        SFM_OUTBOX_URL: process.env.DATABASE_URL!,
        SFM_OUTBOX_TABLE: `${legacy.schema}.sfm_outbox`
      },
      ['--until-idle=3', '--status-interval=0']
    )
    assert.equal((await once(relay.child, 'exit'))[0], 0, relay.stderr())
    await runMemoryUntilIdle()
    const result = await parity(t, legacy.url, stack.table)
    assert.equal(result.code, 0, `${result.err}\n${JSON.stringify(result.report.ids)}`)
    const rows = await stack.pool.query<{ id: string }>(`SELECT id FROM "${stack.table}" WHERE id = ANY($1)`, [killed])
    assert.equal(rows.rows.length, KILLS, 'the memories the app was killed on are there')
  })
})
