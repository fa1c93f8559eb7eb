import type { ReducedItem as FenceReducedItem, Reduction as FenceReduction } from '../../streams/fence.ts'
import type { PreparedRow } from './types.ts'

/** The fence-rule reduce (src/streams/fence.ts) of the sink's prepared rows: one item per key goes to the table. */
export { reduceBatch } from '../../streams/fence.ts'
export type ReducedItem<R extends PreparedRow = PreparedRow> = FenceReducedItem<R>
export type Reduction<R extends PreparedRow = PreparedRow> = FenceReduction<R>

/** Batch order, for a table without a fence: of two items of one key, the later one wins. */
export function compareIndex(a: PreparedRow, b: PreparedRow): number {
  return a.index - b.index
}
