/**
 * `node scripts/gen-strimzi.ts [--check]`: writes the generated Strimzi manifests (KafkaTopics from
 * src/kafka/topics.ts, KafkaConnectors from deploy/connect/*.json); with --check, writes nothing and exits 1 when a
 * committed file differs from what would be generated. See scripts/deploy/strimzi-manifests.ts and docs/DEPLOY.md.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import { errorMessage } from '../src/errors.ts'
import { generateStrimziManifests } from './deploy/strimzi-manifests.ts'
import { REPO_ROOT } from './stack/config.ts'

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { check: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } }
  })
  if (values.help) {
    process.stdout.write('Usage: node scripts/gen-strimzi.ts [--check]\n')
    return 0
  }
  let stale = 0
  for (const file of generateStrimziManifests()) {
    const path = join(REPO_ROOT, file.path)
    const current = await readFile(path, 'utf8').catch(() => undefined)
    if (current === file.content) continue
    if (values.check) {
      process.stderr.write(`gen-strimzi: ${file.path} is out of date\n`)
      stale++
      continue
    }
    await mkdir(dirname(path), { recursive: true })
    await writeFile(path, file.content)
    process.stdout.write(`gen-strimzi: wrote ${file.path}\n`)
  }
  if (stale > 0) process.stderr.write('gen-strimzi: run `node scripts/gen-strimzi.ts` and commit the result\n')
  return stale > 0 ? 1 : 0
}

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (error) {
  process.stderr.write(`gen-strimzi: error: ${errorMessage(error)}\n`)
  process.exitCode = 2
}
