/**
 * The import boundaries of sfm-streams, checked by `npm run lint` (`depcruise` with this file). docs/ARCHITECTURE.md
 * ("Layers") draws the picture. Imports go one way only, down this list:
 *
 *   app      topologies/, src/cli/, src/demo/, src/console/, bench/, scripts/   (may import anything below)
 *   memory   src/memory/                                             the domain
 *   ops      src/ops/                                                operations tools (DLQ, groups): read and produce
 *   sources  src/sources/        sinks  src/sinks/, src/embedders/   generic connectors; never import each other
 *   io       src/kafka/, src/log/, src/pglite/, src/postgres/,     clients and codecs they share
 *            src/connect/, src/schemas/wire/
 *   streams  src/streams/, src/telemetry/                           runtime and operators
 *   core     errors, logger, config, uuid, date-time, event-time, schemas.ts, schemas/{formats,compat,registry}, workers/,
 *            and the ports: src/sources/types.ts, src/sinks/types.ts, src/streams/envelope.ts
 *
 * plus: no import cycles, one sink folder does not import another, src/index.ts (the framework's public API) does not
 * reach into the memory domain, and topologies import the public API (`somafractal-streams`,
 * `somafractal-streams/memory`), not deep paths. An import that had to break a rule for a while would be listed in
 * `knownExceptions` (none today), with the piece of work that removes it; anything else that breaks a rule fails the
 * lint.
 *
 * Try it: `echo "import '../sinks/kafka/index.ts'" > src/sources/planted.ts && npm run lint` fails with
 * `sources-not-sinks-or-up: src/sources/planted.ts → src/sinks/kafka/index.ts` (test/lint/boundaries.test.ts plants
 * such files and checks that each is refused).
 */

/**
 * Imports that break a rule today, as [rule, [[from, to], …]]: each group names the work that removes it. Listed by
 * file pair, so a new wrong-way import, even from one of these files to another module, still fails. None today
 * (the last, the vector sink reading the memory domain, went when the sink took its layout from the caller).
 */
export const knownExceptions = Object.groupBy(
  /** @type {[string, [string, string][]][]} */ ([]).flatMap(([rule, pairs]) =>
    pairs.map(([from, to]) => ({ rule, from, to }))
  ),
  ({ rule }) => rule
)

const core = [
  '^src/(errors|logger|config|uuid|date-time|event-time|schemas)[.]ts$',
  '^src/(sources|sinks)/types[.]ts$',
  '^src/streams/envelope[.]ts$',
  '^src/workers/',
  '^src/schemas/(formats[.]ts|compat/|registry/)'
]
const streams = ['^src/streams/', '^src/telemetry/']
const io = ['^src/(kafka|log|pglite|postgres|connect)/', '^src/schemas/wire/']
const sources = ['^src/sources/']
const sinks = ['^src/sinks/', '^src/embedders/']
const memory = ['^src/memory/']
/** Operations tools (DLQ inspect and redrive, group offsets): beside the domain, below the CLIs and consoles. */
const ops = ['^src/ops/']
const app = ['^(topologies|bench|scripts)/', '^src/(cli|demo|console)/']

/** Modules of a layer: its paths, less the ports (core) that live in the folders of higher layers. */
const layer = (paths) => ({ path: paths, pathNot: core })

/** A rule that `from` may not import anything in `to`. */
const forbid = (name, comment, from, to) => ({ name, comment, severity: 'error', from, to })

/**
 * The vector sink composes its stores (pgvector, Qdrant implement src/sinks/vector/types.ts) and the embedders:
 * one family, free to import each other.
 */
const vectorFamily = '^src/(sinks/(vector|pgvector|qdrant)|embedders)/'

const rules = [
  {
    name: 'no-circular',
    comment:
      'No import cycles. Allowed: the mutual recursion inside src/schemas/compat/ (the differ dispatches per ' +
      'keyword and recurses; issue 21 owns it).',
    severity: 'error',
    from: {},
    to: { circular: true, viaSomeNot: '^src/schemas/compat/' }
  },
  forbid(
    'core-imports-only-core',
    'core is the bottom layer',
    { path: core },
    {
      path: '^(src|topologies|bench|scripts)/',
      pathNot: core
    }
  ),
  forbid('streams-not-up', 'streams import only core and streams', layer(streams), {
    path: [...io, ...sources, ...sinks, ...memory, ...ops, ...app],
    pathNot: core
  }),
  forbid('io-not-up', 'the shared connector clients import only core, streams and io', layer(io), {
    path: [...sources, ...sinks, ...memory, ...ops, ...app],
    pathNot: core
  }),
  forbid('sources-not-sinks-or-up', 'a source imports no sink, no domain, no app', layer(sources), {
    path: [...sinks, ...memory, ...ops, ...app],
    pathNot: core
  }),
  forbid('sinks-not-sources-or-up', 'a sink imports no source, no domain, no app', layer(sinks), {
    path: [...sources, ...memory, ...ops, ...app],
    pathNot: core
  }),
  forbid(
    'sinks-not-each-other',
    'a sink folder does not import another sink folder (shared pieces go down to io or streams)',
    { path: '^src/sinks/([^/]+)/', pathNot: [...core, vectorFamily] },
    { path: '^src/(sinks|embedders)/', pathNot: [...core, '^src/sinks/$1/'] }
  ),
  forbid(
    'vector-sinks-not-other-sinks',
    'the vector sink, its stores (pgvector, Qdrant) and the embedders are one family; they import no other sink',
    { path: vectorFamily, pathNot: core },
    { path: '^src/sinks/', pathNot: [...core, vectorFamily] }
  ),
  forbid('memory-not-app', 'the domain imports no topology, CLI or benchmark', layer(memory), { path: app }),
  forbid('ops-not-app', 'the operations tools import no topology, CLI or benchmark (consoles call them)', layer(ops), {
    path: app
  }),
  forbid(
    'public-api-is-the-framework',
    'src/index.ts exports the framework; the domain is its own entry',
    {
      path: '^src/index[.]ts$'
    },
    { path: [...memory, ...app] }
  ),
  forbid(
    'topologies-use-the-public-api',
    "topologies import 'somafractal-streams' and 'somafractal-streams/memory', not deep paths into src/",
    { path: '^topologies/' },
    { path: '^src/', pathNot: '^src/(index|memory/index)[.]ts$' }
  ),
  forbid(
    'nothing-imports-app',
    'library code never imports a topology, CLI, demo, benchmark or script',
    {
      path: '^src/',
      pathNot: app
    },
    { path: app }
  )
]

export default {
  forbidden: rules.flatMap((rule) => withExceptions(rule, knownExceptions[rule.name] ?? [])),
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|test)/' },
    // Type-only imports count: a type import the wrong way still couples the layers.
    tsPreCompilationDeps: true,
    // Resolves the package's own name through package.json `exports` (the topologies' imports).
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'node', 'default'] }
  }
}

/** A path regex that matches exactly one file. */
function exact(file) {
  return `^${file.replaceAll('.', '[.]')}$`
}

/**
 * A rule with its known exceptions: the rule as written for every other file and, for each file with exceptions,
 * the same rule less the modules that file may still import. (Not for rules whose `to` refers to a group of `from`.)
 */
export function withExceptions(rule, exceptions) {
  if (exceptions.length === 0) return [rule]
  const list = (value) => (value === undefined ? [] : [value].flat())
  const files = [...new Set(exceptions.map(({ from }) => from))]
  return [
    { ...rule, from: { ...rule.from, pathNot: [...list(rule.from.pathNot), ...files.map(exact)] } },
    ...files.map((file) => ({
      ...rule,
      from: { path: exact(file) },
      to: {
        ...rule.to,
        pathNot: [
          ...list(rule.to.pathNot),
          ...exceptions.filter(({ from }) => from === file).map(({ to }) => exact(to))
        ]
      }
    }))
  ]
}
