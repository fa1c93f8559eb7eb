import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { addVersion, copySchemas, readJson, schemasCli } from '../helpers/schemas-cli.ts'

type MemoryEventSchema = { properties: Record<string, Record<string, unknown>>; required: string[] }

test('the repository schemas pass `schemas -- check` (the CI gate on the real schemas/)', async () => {
  const run = await schemasCli(['check'])
  assert.equal(run.code, 0, `${run.stdout}${run.stderr}`)
  assert.match(run.stdout, /^memory\.event \(BACKWARD, v1[^)]*\): ok$/m)
})

test('CI gate: an incompatible memory.event v2 fails `schemas -- check` with subject, versions, rule and path', async (t) => {
  const dir = await copySchemas(t)
  const v1 = await readJson<MemoryEventSchema>(join(dir, 'memory.event', 'v1.json'))
  const v2 = structuredClone(v1) as MemoryEventSchema & { $id: string }
  v2.$id = 'https://schemas.somafractal.dev/memory.event/v2.json'
  v2.properties.op!.enum = ['upsert'] // deletes written under v1 no longer validate
  await addVersion(dir, 'memory.event', 2, v2)
  const run = await schemasCli(['check', '--dir', dir])
  assert.equal(run.code, 1, `${run.stdout}${run.stderr}`)
  assert.match(run.stdout, /^memory\.event \(BACKWARD, v1, v2\): INCOMPATIBLE$/m)
  assert.match(
    run.stdout,
    /memory\.event v2 vs v1: BACKWARD ENUM_VALUES_REMOVED at #\/properties\/op\/enum: \["delete"\] removed/
  )
  assert.match(run.stderr, /1 of \d+ subject\(s\) failed the check/)

  const json = await schemasCli(['check', '--dir', dir, '--json'])
  assert.equal(json.code, 1)
  const report = JSON.parse(json.stdout) as { compatible: boolean; subjects: { subject: string; issues: unknown[] }[] }
  assert.equal(report.compatible, false)
  assert.equal(report.subjects.find((s) => s.subject === 'memory.event')?.issues.length, 1)
})

test('a compatible memory.event v2 passes, and `diff` lists what changed with both verdicts', async (t) => {
  const dir = await copySchemas(t)
  const v1 = await readJson<MemoryEventSchema>(join(dir, 'memory.event', 'v1.json'))
  const v2 = structuredClone(v1) as MemoryEventSchema & { $id: string }
  v2.$id = 'https://schemas.somafractal.dev/memory.event/v2.json'
  v2.properties.id!.maxLength = 512
  v2.properties.tags = {} // an open content model only takes new properties with an empty schema under BACKWARD
  await addVersion(dir, 'memory.event', 2, v2)
  const run = await schemasCli(['check', '--dir', dir])
  assert.equal(run.code, 0, `${run.stdout}${run.stderr}`)

  const diff = await schemasCli(['diff', 'memory.event', '--dir', dir])
  assert.equal(diff.code, 0, diff.stderr)
  assert.match(diff.stdout, /memory\.event v1 → v2 \(subject mode BACKWARD\): 3 change\(s\)/)
  assert.match(diff.stdout, /ID_CHANGED at #\/\$id {2}\[backward ok, forward ok\]/)
  assert.match(diff.stdout, /MAX_LENGTH_INCREASED at #\/properties\/id\/maxLength {2}\[backward ok, forward BREAKS\]/)
  assert.match(
    diff.stdout,
    /PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL at #\/properties\/tags {2}\[backward ok, forward ok\]/
  )
  const explicit = await schemasCli(['diff', 'memory.event', '--dir', dir, '--from', '1', '--to', '2'])
  assert.equal(explicit.stdout, diff.stdout)
})

test('check fails on a version file not listed in subject.json, and on a schema ajv cannot compile', async (t) => {
  const dir = await copySchemas(t)
  await writeFile(join(dir, 'memory.event', 'v2.json'), '{"$id": "urn:x", "type": "object"}')
  const unlisted = await schemasCli(['check', '--dir', dir])
  assert.equal(unlisted.code, 1)
  assert.match(unlisted.stdout, /v2\.json not listed in subject\.json "versions"/)

  await mkdir(join(dir, 'broken'))
  await writeFile(join(dir, 'broken', 'subject.json'), JSON.stringify({ compatibility: 'FULL', versions: [1] }))
  await writeFile(join(dir, 'broken', 'v1.json'), JSON.stringify({ $id: 'urn:broken', type: 'strin' }))
  const broken = await schemasCli(['check', '--dir', dir])
  assert.equal(broken.code, 1)
  assert.match(broken.stdout, /^broken \(FULL, v1\): ERROR$/m)
  assert.match(broken.stdout, /broken v1: ajv cannot compile it/)
})

test('check-pair prints compatible or incompatible with reasons and exits 0 or 1', async (t) => {
  const dir = await copySchemas(t)
  const oldPath = join(dir, 'old.json')
  const newPath = join(dir, 'new.json')
  await writeFile(oldPath, JSON.stringify({ type: 'object', properties: { n: { type: 'integer' } } }))
  await writeFile(newPath, JSON.stringify({ type: 'object', properties: { n: { type: 'number' } } }))

  const backward = await schemasCli(['check-pair', oldPath, newPath, '--mode', 'BACKWARD'])
  assert.equal(backward.code, 0, backward.stderr)
  assert.equal(backward.stdout, 'compatible\n')

  const full = await schemasCli(['check-pair', oldPath, newPath, '--mode', 'FULL'])
  assert.equal(full.code, 1)
  assert.match(full.stdout, /^incompatible\n {2}FORWARD TYPE_EXTENDED at #\/properties\/n\/type: type widened/)

  const forward = await schemasCli(['check-pair', newPath, oldPath, '--mode', 'FORWARD_TRANSITIVE', '--json'])
  assert.equal(forward.code, 0)
  assert.equal((JSON.parse(forward.stdout) as { compatible: boolean }).compatible, true)
})

test('usage: --help, unknown commands and bad flags exit 2; a registry command without a URL exits 1', async () => {
  const help = await schemasCli(['--help'])
  assert.equal(help.code, 0)
  assert.match(help.stdout, /check-pair <old> <new>/)
  for (const args of [
    [],
    ['frobnicate'],
    ['diff'],
    ['check-pair', 'a.json'],
    ['check-pair', 'a', 'b', '--mode', 'SIDEWAYS']
  ]) {
    const run = await schemasCli(args)
    assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`)
  }
  const env = { ...process.env }
  delete env.SCHEMA_REGISTRY_URL
  const register = await schemasCli(['register'], env)
  assert.equal(register.code, 1)
  assert.match(register.stderr, /no registry: pass --url or set SCHEMA_REGISTRY_URL/)
  const missing = await schemasCli(['check-pair', '/nonexistent/a.json', '/nonexistent/b.json'])
  assert.equal(missing.code, 1)
  assert.match(missing.stderr, /cannot read \/nonexistent\/a\.json/)
})
