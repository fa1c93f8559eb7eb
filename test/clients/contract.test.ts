/**
 * The producer contract: the same memories written through the Python package (sfm_events.MemoryEvents) and through
 * `npm run produce` (events built in TypeScript with legacyMemoryId) give identical `memories` rows, on the real
 * broker and PostgreSQL through the memory topology.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { REPO_ROOT } from '../../scripts/stack/config.ts'
import { legacyMemoryId } from '../../src/memory/legacy/memory-id.ts'
import { brokers, NO_KAFKA, uniqueName } from '../helpers/kafka.ts'
import { isolatedMemoryStack, runMemoryUntilIdle } from '../helpers/legacy.ts'
import { readMemories } from '../sinks/postgres/helpers.ts'

const PYTHON = join(REPO_ROOT, '.venv', 'bin', 'python')
const skip =
  (brokers() && process.env.DATABASE_URL ? false : `${NO_KAFKA}; DATABASE_URL too`) ||
  (existsSync(PYTHON) ? false : 'no .venv with sfm_events: run `npm run python-setup`')

interface Spec {
  namespace: string
  coordinate: number[]
  value?: Record<string, unknown>
  op: 'upsert' | 'delete'
  version: number
}

const hexOf = (x: number): string => {
  const buffer = Buffer.alloc(8)
  buffer.writeDoubleBE(x)
  return buffer.toString('hex')
}

/** Publishes each spec with MemoryEvents (coordinates given bit for bit) and prints the events it built. */
const PUBLISH = `
import json, struct, sys
from sfm_events import MemoryEvents
out = []
with MemoryEvents(topic=sys.argv[1]) as events:
    for line in sys.stdin:
        spec = json.loads(line)
        coord = [struct.unpack(">d", bytes.fromhex(h))[0] for h in spec["coordinate"]]
        if spec["op"] == "delete":
            out.append(events.delete(spec["namespace"], coord, version=spec["version"], wait=False))
        else:
            out.append(events.upsert(spec["namespace"], coord, spec["value"], version=spec["version"], wait=False))
sys.stdout.write("".join(json.dumps(e) + "\\n" for e in out))
`

function specs(): Spec[] {
  const coordinates = [[1, 2, 3], [0.5], [1e-5, -0, 1e16], [0.1 + 0.2, 3], [-7.25, 1e-300], [123456789.125, 0, -1]]
  const out: Spec[] = []
  let version = 1
  for (const namespace of ['default', 'ns-b']) {
    for (const [i, coordinate] of coordinates.entries()) {
      out.push({
        namespace,
        coordinate,
        op: 'upsert',
        version: version++,
        value: {
          text: `memory ${i} — «ünïcode» \u2603`,
          memory_type: i % 2 ? 'semantic' : 'episodic',
          coordinate,
          timestamp: 1760349600.123456 + i,
          ...(i % 3 === 0 ? { importance: i / 7 } : {}),
          links: [{ to: 'default:(1.0,)', type: 'related', timestamp: 1.5e9, weight: 0.25 }],
          nested: { deep: { list: [1, 2.5, -3e-7, 2 ** 53 - 1, null, true, 'x'] } }
        }
      })
    }
  }
  // Later writes: an update with a new value, and deletes (tombstones).
  out.push({ ...out[1]!, version: version++, value: { ...out[1]!.value, text: 'updated', access_count: 3 } })
  out.push({ namespace: 'default', coordinate: [0.1 + 0.2, 3], op: 'delete', version: version++ })
  out.push({ namespace: 'ns-b', coordinate: [1e-5, -0, 1e16], op: 'delete', version: version++ })
  return out
}

describe('producer contract: Python package and npm run produce', { skip }, () => {
  test('the same memories give identical memories rows', { timeout: 240_000 }, async (t) => {
    const stack = await isolatedMemoryStack(t)
    const topic = stack.topic('memory.events')
    const group = uniqueName('contract')
    const input = specs()
    const python = spawnSync(PYTHON, ['-c', PUBLISH, topic], {
      input: input.map((s) => `${JSON.stringify({ ...s, coordinate: s.coordinate.map(hexOf) })}\n`).join(''),
      env: { ...process.env, KAFKA_BROKERS: brokers()!.join(',') },
      encoding: 'utf8'
    })
    assert.equal(python.status, 0, python.stderr)
    const published = python.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>)
    assert.equal(published.length, input.length)
    await runMemoryUntilIdle({ group })
    const fromPython = await readMemories(stack.pool, `"${stack.table}"`)

    // The same memories as TypeScript events (event_id and timestamp taken over: they identify events, not memories).
    const events = input.map((spec, i) => {
      const py = published[i]!
      const id = legacyMemoryId(spec.namespace, spec.coordinate)
      assert.equal(py.id, id, 'the Python id is the TypeScript id')
      const base = { event_id: py.event_id, id, namespace: spec.namespace, op: spec.op }
      if (spec.op === 'delete') return { ...base, timestamp: py.timestamp, version: spec.version }
      const importance = spec.value?.importance
      return {
        ...base,
        type: spec.value?.memory_type,
        timestamp: py.timestamp,
        version: spec.version,
        ...(typeof importance === 'number' ? { importance } : {}),
        payload: spec.value
      }
    })
    await stack.pool.query(`TRUNCATE "${stack.table}", "${stack.table}_events_processed"`)
    const dir = await mkdtemp(join(tmpdir(), 'sfm-contract-'))
    t.after(() => rm(dir, { recursive: true, force: true }))
    const file = join(dir, 'events.jsonl')
    await writeFile(file, events.map((e) => `${JSON.stringify(e)}\n`).join(''))
    const produce = spawnSync(
      process.execPath,
      ['src/cli/produce.ts', '--topic', topic, '--file', file, '--key-field', 'id'],
      { cwd: REPO_ROOT, encoding: 'utf8' }
    )
    assert.equal(produce.status, 0, produce.stderr)
    await runMemoryUntilIdle({ group })
    const fromTypeScript = await readMemories(stack.pool, `"${stack.table}"`)

    assert.equal(fromPython.size, 12)
    assert.equal([...fromPython.values()].filter((r) => r.deletedAt !== null).length, 2, 'two tombstones')
    assert.deepEqual(fromTypeScript, fromPython)
  })
})
