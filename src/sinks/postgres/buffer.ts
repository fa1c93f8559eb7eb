import type { ReducedItem as FenceReducedItem, Reduction as FenceReduction } from '../../streams/fence.ts'
import type { PreparedEvent } from './types.ts'

/** The fence-rule reduce (src/streams/fence.ts) of the memories sink's prepared events. */
export { reduceBatch } from '../../streams/fence.ts'
export type ReducedItem = FenceReducedItem<PreparedEvent>
export type Reduction = FenceReduction<PreparedEvent>
