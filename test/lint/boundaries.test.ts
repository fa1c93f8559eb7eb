/**
 * The import-boundary check (`npm run lint`, .dependency-cruiser.mjs): it passes on the tree as it is, and refuses a
 * planted wrong-way import or cycle. Each case writes a small file into the tree (removed afterwards) and cruises it
 * with the project's own configuration.
 */
import assert from 'node:assert/strict'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { cruise, type ICruiseResult, type IForbiddenRuleType } from 'dependency-cruiser'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const tag = `planted-${process.pid}`

type Rule = Extract<IForbiddenRuleType, { to: unknown }>
interface Exception {
  rule: string
  from: string
  to: string
}
const {
  default: config,
  knownExceptions,
  withExceptions
} = (await import(pathToFileURL(join(ROOT, '.dependency-cruiser.mjs')).href)) as {
  default: { forbidden: Rule[]; options: Record<string, unknown> }
  knownExceptions: Partial<Record<string, Exception[]>>
  withExceptions: (rule: Rule, exceptions: Exception[]) => Rule[]
}

interface Violation {
  rule: string
  from: string
  to: string
}

async function violations(paths: string[]): Promise<Violation[]> {
  const { forbidden, options } = config
  const { enhancedResolveOptions, ...cruiseOptions } = options
  const result = await cruise(
    paths,
    { ...cruiseOptions, baseDir: ROOT, validate: true, ruleSet: { forbidden }, outputType: 'json' },
    enhancedResolveOptions as Record<string, unknown>
  )
  const output = JSON.parse(result.output as string) as ICruiseResult
  return output.summary.violations.map((v) => ({ rule: v.rule.name, from: v.from, to: v.to }))
}

/** Writes the files (path relative to the repository → source) for the test, and removes them after it. */
function plant(t: { after(fn: () => void): void }, files: Record<string, string>): string[] {
  const paths = Object.keys(files)
  t.after(() => {
    for (const path of paths) rmSync(join(ROOT, path), { force: true })
  })
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(ROOT, path)), { recursive: true })
    writeFileSync(join(ROOT, path), text)
  }
  return paths
}

describe('import boundaries (dependency-cruiser)', () => {
  test('the tree as it is passes', async () => {
    assert.deepEqual(await violations(['src', 'topologies', 'bench', 'scripts']), [])
  })

  const cases: [string, string, string, string][] = [
    [
      'a source imports a sink',
      `src/sources/${tag}.ts`,
      "import '../sinks/kafka/index.ts'\n",
      'sources-not-sinks-or-up'
    ],
    [
      'a sink imports a source',
      `src/sinks/kafka/${tag}.ts`,
      "import '../../sources/log.ts'\n",
      'sinks-not-sources-or-up'
    ],
    [
      'a sink imports the memory domain',
      `src/sinks/kafka/${tag}.ts`,
      "import '../../memory/event.ts'\n",
      'sinks-not-sources-or-up'
    ],
    [
      'a sink imports another sink',
      `src/sinks/postgres/${tag}.ts`,
      "import '../kafka/index.ts'\n",
      'sinks-not-each-other'
    ],
    ['streams import a source', `src/streams/${tag}.ts`, "import '../sources/kafka/index.ts'\n", 'streams-not-up'],
    ['core imports streams', `src/workers/${tag}.ts`, "import '../streams/runtime.ts'\n", 'core-imports-only-core'],
    ['the embedded log imports a sink', `src/log/${tag}.ts`, "import '../sinks/kafka/index.ts'\n", 'io-not-up'],
    ['the domain imports a CLI', `src/memory/${tag}.ts`, "import '../cli/io.ts'\n", 'memory-not-app'],
    [
      'a topology imports a deep path',
      `topologies/${tag}.ts`,
      "import '../src/streams/topology.ts'\n",
      'topologies-use-the-public-api'
    ]
  ]
  for (const [name, path, text, rule] of cases) {
    test(`refused: ${name} (${rule})`, async (t) => {
      plant(t, { [path]: text })
      const found = await violations([path])
      assert.ok(
        found.some((v) => v.rule === rule && v.from === path),
        `expected ${rule} from ${path}, got ${JSON.stringify(found)}`
      )
    })
  }

  test('refused: an import cycle (no-circular)', async (t) => {
    const a = `src/streams/${tag}-a.ts`
    const b = `src/streams/${tag}-b.ts`
    plant(t, { [a]: `import './${tag}-b.ts'\n`, [b]: `import './${tag}-a.ts'\n` })
    const found = await violations([a])
    assert.ok(
      found.some((v) => v.rule === 'no-circular'),
      `expected no-circular, got ${JSON.stringify(found)}`
    )
  })

  test('no known exceptions: the vector sink and the embedders import nothing of the memory domain', async (t) => {
    assert.deepEqual(Object.keys(knownExceptions), [])
    // The files the last exceptions were about: the same import planted there is refused now.
    const path = `src/sinks/vector/${tag}.ts`
    plant(t, { [path]: "import '../../memory/event.ts'\n" })
    const found = await violations([path])
    assert.ok(
      found.some((v) => v.rule === 'sinks-not-sources-or-up' && v.to === 'src/memory/event.ts'),
      `expected sinks-not-sources-or-up from ${path}, got ${JSON.stringify(found)}`
    )
  })

  test('a known exception covers only its own pair: that file keeps the rule for every other module', () => {
    // As if src/sinks/vector/sink.ts were allowed src/memory/event.ts: it may import that, and nothing else of the domain.
    const rule = config.forbidden.find((r) => r.name === 'sinks-not-sources-or-up')!
    const rules = withExceptions(rule, [
      { rule: rule.name!, from: 'src/sinks/vector/sink.ts', to: 'src/memory/event.ts' }
    ])
    const forFile = rules.filter((r) => [r.from.path].flat().includes('^src/sinks/vector/sink[.]ts$'))
    assert.equal(forFile.length, 1)
    const general = rules.find((r) => [r.from.pathNot].flat().includes('^src/sinks/vector/sink[.]ts$'))
    assert.ok(general, 'the general rule leaves the file to its own rule')
    const extra = [forFile[0]!.to.pathNot].flat().filter((p) => !([general.to.pathNot].flat() as unknown[]).includes(p))
    assert.deepEqual(extra, ['^src/memory/event[.]ts$'])
    assert.deepEqual(forFile[0]!.to.path, general.to.path)
  })
})
