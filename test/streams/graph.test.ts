import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { identity, pipe } from 'rxjs'
import type { Sink } from '../../src/sinks/types.ts'
import type { Source } from '../../src/sources/types.ts'
import { pipeline } from '../../src/streams/describe.ts'
import { toMermaid, topologyGraph } from '../../src/streams/graph.ts'
import { decodeJson } from '../../src/streams/operators/decode-json.ts'
import { dedupe } from '../../src/streams/operators/dedupe.ts'
import { keep } from '../../src/streams/operators/keep.ts'
import { validate } from '../../src/streams/operators/validate.ts'
import { branch, defineTopology } from '../../src/streams/topology.ts'
import { embeddedEnv, spawnNode, tempDataDir } from '../helpers/embedded-log.ts'

const source = { description: 'test source', next: async () => undefined } as unknown as Source
const sink = (kind: string): Sink<unknown> => ({ kind, write: async () => undefined })
const deadLetter = { description: 'test dlq', write: async () => {} }

describe('topologyGraph', () => {
  test('names each operator of pipeline(...), each branch (its operators, batching, sink) and the DLQ edges', () => {
    const topology = defineTopology<unknown>({
      name: 'g',
      source,
      pipeline: pipeline(
        decodeJson({ maxBytes: 100 }),
        validate({ title: 'thing v1', type: 'object' }),
        dedupe({ key: () => undefined, windowSize: 10 })
      ),
      branches: {
        a: branch(sink('postgres'), {
          pipeline: pipeline(keep(() => true, { stage: 'only-some' })),
          batch: { maxCount: 7, maxBytes: 2048, maxWaitMs: 3 }
        }),
        'b-2': branch(sink('kafka'))
      },
      deadLetter
    })
    const graph = topologyGraph(topology)
    assert.deepEqual(
      graph.nodes.map((n) => [n.id, n.label]),
      [
        ['source', 'source'],
        ['op:0', 'decodeJson'],
        ['op:1', 'validate'],
        ['op:2', 'dedupe'],
        ['branch:a:op:0', 'keep'],
        ['branch:a:batch', 'batch (a)'],
        ['sink:a', 'a'],
        ['branch:b-2:batch', 'batch (b-2)'],
        ['sink:b-2', 'b-2'],
        ['dlq', 'dead letters']
      ]
    )
    assert.equal(graph.nodes[2]?.detail, 'thing v1')
    assert.equal(graph.nodes[5]?.detail, '7 / 2 KiB / 3 ms, limits, 4 in flight')
    assert.equal(graph.nodes[4]?.stage, 'only-some')
    // Only what dead-letters has a poison edge: decode, validate and the sinks; dedupe and keep drop.
    assert.deepEqual(
      graph.edges.filter((e) => e.to === 'dlq').map((e) => e.from),
      ['op:0', 'op:1', 'sink:a', 'sink:b-2']
    )
    assert.deepEqual(
      graph.edges.filter((e) => e.to !== 'dlq').map((e) => `${e.from}>${e.to}`),
      [
        'source>op:0',
        'op:0>op:1',
        'op:1>op:2',
        'op:2>branch:a:op:0',
        'branch:a:op:0>branch:a:batch',
        'branch:a:batch>sink:a',
        'op:2>branch:b-2:batch',
        'branch:b-2:batch>sink:b-2'
      ]
    )
    const mermaid = toMermaid(graph)
    assert.match(mermaid, /^flowchart LR\n/)
    assert.match(mermaid, /\n {2}op_0\["decodeJson<br\/>≤ 100 bytes, depth ≤ 64"\]\n/)
    assert.match(mermaid, /\n {2}sink_b_2 -\. poison \.-> dlq\n/)
    assert.match(mermaid, /\n {2}branch_a_batch --> sink_a\n/)
  })

  test('a plain rxjs pipe is one node; labels cannot break out of their quotes', () => {
    const topology = defineTopology<unknown>({
      name: 'plain',
      source: { ...source, description: 'say "hi" <b>' } as Source,
      pipeline: pipe(identity),
      branches: { only: branch(sink('x')) },
      deadLetter
    })
    const graph = topologyGraph(topology)
    assert.deepEqual(
      graph.nodes.map((n) => n.label),
      ['source', 'pipeline', 'batch (only)', 'only', 'dead letters']
    )
    const mermaid = toMermaid(graph)
    assert.match(mermaid, /source\[\("source<br\/>say #quot;hi#quot; #lt;b#gt;"\)\]/)
  })
})

describe('npm start -- <topology> --graph', () => {
  test('prints the memory topology as Mermaid and exits 0 without running it', async (t) => {
    const dir = tempDataDir(t, 'sfm-graph-')
    const run = spawnNode(['src/cli/start.ts', 'topologies/memory.ts', '--graph'], embeddedEnv(dir))
    const { code } = await run.exited
    assert.equal(code, 0, run.stderr())
    const out = run.stdout()
    assert.match(out, /^flowchart LR\n/)
    for (const node of [
      'source[(',
      'op_0["decodeJson',
      'op_1["legacyEvents<br/>reject',
      'op_2["validate<br/>memory.event v1',
      'op_3["dedupe'
    ]) {
      assert.ok(out.includes(node), `missing ${node} in\n${out}`)
    }
    assert.match(out, /sink_kv\[\("kv<br\/>postgres\+kafka"\)\]/)
    assert.match(out, /sink_vectors\[\("vectors<br\/>vector"\)\]/)
    assert.match(out, /dlq\[\/"dead letters<br\/>topic memory\.dlq/)
    assert.match(out, /op_3 --> branch_kv_batch\n/)
    assert.match(out, /op_1 -\. poison \.-> dlq\n/)
    // Nothing was consumed: the graph does not start the topology.
    assert.doesNotMatch(run.stderr(), /assigned \d+ partition/)
  })

  test('SFM_VECTORS=off leaves the vectors branch out of the graph', async (t) => {
    const dir = tempDataDir(t, 'sfm-graph-')
    const run = spawnNode(
      ['src/cli/start.ts', 'topologies/memory.ts', '--graph'],
      embeddedEnv(dir, { SFM_VECTORS: 'off' })
    )
    const { code } = await run.exited
    assert.equal(code, 0, run.stderr())
    assert.doesNotMatch(run.stdout(), /vectors/)
    assert.match(run.stdout(), /sink_kv/)
  })
})
