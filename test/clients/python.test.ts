/**
 * The Python package `sfm_events` (clients/python): its own pytest suite against the real broker and PostgreSQL,
 * and its legacy_memory_id against the TypeScript legacyMemoryId on generated coordinates. Needs the project's
 * `.venv` (`npm run python-setup`, which .ci/run runs); skips with that reason without it.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import fc from 'fast-check'
import { REPO_ROOT } from '../../scripts/stack/config.ts'
import { legacyMemoryId } from '../../src/memory/legacy/memory-id.ts'

const PYTHON = join(REPO_ROOT, '.venv', 'bin', 'python')
const skip = existsSync(PYTHON) ? false : 'no .venv with sfm_events: run `npm run python-setup`'

test('sfm_events: pytest against the real broker and PostgreSQL', { skip }, () => {
  const brokers = process.env.KAFKA_BROKERS
  const databaseUrl = process.env.DATABASE_URL
  if (!brokers || !databaseUrl) {
    assert.fail('KAFKA_BROKERS and DATABASE_URL must be set (npm test sets them)')
  }
  const run = spawnSync(
    PYTHON,
    ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-rs', join(REPO_ROOT, 'clients', 'python', 'tests')],
    // Run from the tests' folder so that `import sfm_events` finds the installed package, not the source tree.
    {
      cwd: join(REPO_ROOT, 'clients', 'python', 'tests'),
      env: { ...process.env, KAFKA_BROKERS: brokers, DATABASE_URL: databaseUrl },
      encoding: 'utf8',
      timeout: 170_000
    }
  )
  const output = `${run.stdout}\n${run.stderr}`
  assert.equal(run.status, 0, output)
  assert.match(output, /\d+ passed/)
  assert.doesNotMatch(output, /skipped/, `no Python test may skip when the services are there:\n${output}`)
})

/** `<namespace> <hex of each IEEE-754 double>` per line → sfm_events.legacy_memory_id per line. */
const PYTHON_IDS = `
import struct, sys
from sfm_events import legacy_memory_id
out = []
for line in sys.stdin:
    ns, _, data = line.rstrip("\\n").partition(" ")
    out.append(legacy_memory_id(ns, [struct.unpack(">d", bytes.fromhex(h))[0] for h in data.split(" ") if h]))
sys.stdout.write("\\n".join(out) + "\\n")
`

const hexOf = (x: number): string => {
  const buffer = Buffer.alloc(8)
  buffer.writeDoubleBE(x)
  return buffer.toString('hex')
}

test('sfm_events.legacy_memory_id equals legacyMemoryId on 50,000 generated coordinates', { skip }, () => {
  const element = fc.oneof(
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc
      .tuple(fc.integer({ min: -999_999, max: 999_999 }), fc.integer({ min: -330, max: 310 }))
      .map(([m, e]) => Number(`${m}e${e}`))
      .filter(Number.isFinite),
    fc.constantFrom(0, -0, 1e-4, 9.999999999999999e-5, 1e16, 9999999999999998, 5e-324, Number.MAX_VALUE),
    fc.integer()
  )
  const namespace = fc.stringMatching(/^[a-z][a-z0-9_-]{0,11}$/)
  const cases = fc.sample(fc.tuple(namespace, fc.array(element, { maxLength: 6 })), { numRuns: 50_000, seed: 1818 })
  const run = spawnSync(PYTHON, ['-c', PYTHON_IDS], {
    input: `${cases.map(([ns, coord]) => `${ns} ${coord.map(hexOf).join(' ')}`).join('\n')}\n`,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024
  })
  assert.equal(run.status, 0, run.stderr)
  const python = run.stdout.slice(0, -1).split('\n')
  assert.equal(python.length, cases.length)
  cases.forEach(([ns, coord], i) => {
    const ours = legacyMemoryId(ns, coord)
    if (ours !== python[i]) assert.fail(`${JSON.stringify(coord.map(hexOf))}: TypeScript ${ours}, Python ${python[i]}`)
  })
})
