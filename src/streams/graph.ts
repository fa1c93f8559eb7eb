import { operatorInfos } from './describe.ts'
import type { Topology } from './topology.ts'

export const GraphNodeKinds = {
  SOURCE: 'source',
  OPERATOR: 'operator',
  BATCH: 'batch',
  SINK: 'sink',
  DLQ: 'dlq'
} as const
export type GraphNodeKind = (typeof GraphNodeKinds)[keyof typeof GraphNodeKinds]

/** The graph's node ids, shared with the runtime's per-node counts (node-counters.ts). */
export const nodeIds = {
  operator: (index: number) => `op:${index}`,
  branchOperator: (branch: string, index: number) => `branch:${branch}:op:${index}`,
  batch: (branch: string) => `branch:${branch}:batch`,
  sink: (branch: string) => `sink:${branch}`
} as const

export interface GraphNode {
  /** Stable id: `source`, `op:<stage or index>`, `branch:<name>:op:<i>`, `branch:<name>:batch`, `sink:<name>`, `dlq`. */
  readonly id: string
  readonly kind: GraphNodeKind
  readonly label: string
  readonly detail?: string
  /** The stage name this node dead-letters or drops under (the `sfm.dlq.stage` header). */
  readonly stage?: string
  /** It dead-letters poison (an edge to the DLQ). */
  readonly deadLetters?: boolean
  /** The branch a node belongs to (branch operators, batch, sink). */
  readonly branch?: string
}

export interface GraphEdge {
  readonly from: string
  readonly to: string
  /** `poison` for the edges to the DLQ. */
  readonly label?: string
}

export interface TopologyGraph {
  readonly name: string
  readonly nodes: readonly GraphNode[]
  readonly edges: readonly GraphEdge[]
}

/**
 * The topology as a graph, from its definition: source → shared pipeline operators → per branch (its operators,
 * its batching) → its sink; every stage that can reject an item and every sink has a `poison` edge to the DLQ.
 * Operators made with `pipeline(...)` (describe.ts) are named; a plain rxjs `pipe` shows as one node.
 */
export function topologyGraph(topology: Topology<unknown>): TopologyGraph {
  const nodes: GraphNode[] = []
  const edges: GraphEdge[] = []
  const poison = (from: string) => edges.push({ from, to: 'dlq', label: 'poison' })
  nodes.push({ id: 'source', kind: GraphNodeKinds.SOURCE, label: 'source', detail: topology.source.description })
  let last = 'source'
  const shared = topology.pipeline ? (operatorInfos(topology.pipeline) ?? [{ name: 'pipeline' }]) : []
  shared.forEach((op, i) => {
    const id = nodeIds.operator(i)
    nodes.push({
      id,
      kind: GraphNodeKinds.OPERATOR,
      label: op.name,
      ...(op.detail ? { detail: op.detail } : {}),
      ...(op.stage ? { stage: op.stage } : {}),
      ...(op.deadLetters ? { deadLetters: true } : {})
    })
    edges.push({ from: last, to: id })
    if (op.deadLetters) poison(id)
    last = id
  })
  const fanOut = last
  for (const [name, branch] of Object.entries(topology.branches)) {
    let previous = fanOut
    const info = branch.info
    info?.operators.forEach((op, i) => {
      const id = nodeIds.branchOperator(name, i)
      nodes.push({
        id,
        kind: GraphNodeKinds.OPERATOR,
        label: op.name,
        branch: name,
        ...(op.detail ? { detail: op.detail } : {}),
        ...(op.stage ? { stage: op.stage } : {})
      })
      edges.push({ from: previous, to: id })
      if (op.deadLetters) poison(id)
      previous = id
    })
    if (info) {
      const id = nodeIds.batch(name)
      const b = info.batch
      nodes.push({
        id,
        kind: GraphNodeKinds.BATCH,
        label: `batch (${name})`,
        branch: name,
        detail: `${b.maxCount} / ${formatBytes(b.maxBytes)} / ${b.maxWaitMs} ms, ${b.flush}, ${info.maxInFlightBatches} in flight`
      })
      edges.push({ from: previous, to: id })
      previous = id
    }
    const sinkId = nodeIds.sink(name)
    nodes.push({
      id: sinkId,
      kind: GraphNodeKinds.SINK,
      label: name,
      detail: branch.sink.kind,
      branch: name,
      deadLetters: true
    })
    edges.push({ from: previous, to: sinkId })
    poison(sinkId)
  }
  nodes.push({ id: 'dlq', kind: GraphNodeKinds.DLQ, label: 'dead letters', detail: topology.deadLetter.description })
  return { name: topology.name, nodes, edges }
}

function formatBytes(bytes: number): string {
  if (bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`
  if (bytes % 1024 === 0) return `${bytes / 1024} KiB`
  return `${bytes} B`
}

/** Mermaid node ids: letters, digits and underscores. */
function mermaidId(id: string): string {
  return id.replace(/[^A-Za-z0-9]/g, '_')
}

/** A label inside `["…"]`: Mermaid's entity codes for the characters that would end or confuse it. */
function mermaidText(text: string): string {
  return text.replace(/[#"<>]/g, (c) => ({ '#': '#35;', '"': '#quot;', '<': '#lt;', '>': '#gt;' })[c] ?? c)
}

/** The graph as a Mermaid flowchart (left to right); the DLQ edges dotted. */
export function toMermaid(graph: TopologyGraph): string {
  const shape = (node: GraphNode) => {
    const text = mermaidText(node.detail ? `${node.label}<br/>${node.detail}` : node.label).replace(
      '#lt;br/#gt;',
      '<br/>'
    )
    switch (node.kind) {
      case GraphNodeKinds.SOURCE:
        return `[("${text}")]`
      case GraphNodeKinds.SINK:
        return `[("${text}")]`
      case GraphNodeKinds.DLQ:
        return `[/"${text}"/]`
      case GraphNodeKinds.BATCH:
        return `[["${text}"]]`
      default:
        return `["${text}"]`
    }
  }
  const lines = [`flowchart LR`, `  %% topology ${mermaidText(graph.name)}`]
  for (const node of graph.nodes) lines.push(`  ${mermaidId(node.id)}${shape(node)}`)
  for (const edge of graph.edges) {
    const arrow = edge.label ? ` -. ${mermaidText(edge.label)} .-> ` : ' --> '
    lines.push(`  ${mermaidId(edge.from)}${arrow}${mermaidId(edge.to)}`)
  }
  return `${lines.join('\n')}\n`
}
