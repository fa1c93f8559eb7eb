import { type VectorSink, type VectorSinkOptions, vectorSink } from '../../sinks/vector/sink.ts'
import type { MemoryEvent } from '../event.ts'
import { memoryVectorLayout } from './prepare.ts'

export type MemoryVectorSinkOptions = Omit<VectorSinkOptions<MemoryEvent>, 'layout'>

/**
 * The vector branch of the memory topology: keeps a vector index equal to the latest state of every memory (the
 * generic vector sink with the memories' layout: a memory's point, its text per `embeddingText`, deletes by
 * `op: delete`).
 */
export function memoryVectorSink(options: MemoryVectorSinkOptions): VectorSink<MemoryEvent> {
  return vectorSink({ ...options, layout: memoryVectorLayout })
}
