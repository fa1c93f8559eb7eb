import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ExitCodes, type Io, parseCommandLine, UsageError } from '../../src/cli/io.ts'

function capture(): Io & { out_: string[]; err_: string[] } {
  const out_: string[] = []
  const err_: string[] = []
  return { out_, err_, out: (line) => out_.push(line), err: (line) => err_.push(line) }
}

test('parseCommandLine: a usage mistake is one line naming the tool, the pointer to --help, exit 2', () => {
  const io = capture()
  const result = parseCommandLine('tool', 'Usage: tool', io, () => {
    throw new UsageError('--since: expected a duration')
  })
  assert.equal(result, ExitCodes.USAGE)
  assert.deepEqual(io.err_, ['tool: --since: expected a duration', 'Run with --help for usage.'])
  assert.deepEqual(io.out_, [])
})

test('parseCommandLine: --help prints the usage on stdout, exit 0', () => {
  const io = capture()
  const result = parseCommandLine('tool', 'Usage: tool [options]', io, () => ({ help: true as const }))
  assert.equal(result, ExitCodes.OK)
  assert.deepEqual(io.out_, ['Usage: tool [options]'])
  assert.deepEqual(io.err_, [])
})

test('parseCommandLine: otherwise the parsed options come back and nothing is printed', () => {
  const io = capture()
  const parsed = { help: false, group: 'g' }
  assert.equal(
    parseCommandLine('tool', 'Usage', io, () => parsed),
    parsed
  )
  const noHelpField = { group: 'g' }
  assert.equal(
    parseCommandLine('tool', 'Usage', io, () => noHelpField),
    noHelpField
  )
  assert.deepEqual([...io.out_, ...io.err_], [])
})
