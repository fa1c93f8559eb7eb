import { ErrorKinds, kindOf } from '../errors.ts'
import { type EmbedMessage, embedChannel } from '../telemetry/channels.ts'
import type { Embedder } from './types.ts'

export interface EmbedOutcome<T> {
  readonly vectors: Map<T, Float32Array>
  /** Items whose text the embedder refused (PoisonError), each with its error. */
  readonly refused: { item: T; error: unknown }[]
}

/**
 * Embeds the texts of `items` in one call. When the embedder refuses the input (PoisonError: an HTTP 400/413/422
 * for one text poisons the whole request), the group is halved until the refused texts stand alone, so they can be
 * dead-lettered and the rest embedded. Retriable and fatal errors are thrown. Each successful call is published on
 * the embed channel (sfm_embed_seconds, sfm_embedded_texts_total).
 */
export async function embedIsolating<T>(
  embedder: Embedder,
  items: readonly T[],
  textOf: (item: T) => string,
  signal?: AbortSignal
): Promise<EmbedOutcome<T>> {
  const vectors = new Map<T, Float32Array>()
  const refused: { item: T; error: unknown }[] = []
  const run = async (group: readonly T[]): Promise<void> => {
    const started = performance.now()
    let out: Float32Array[]
    try {
      out = await embedder.embed(group.map(textOf), signal)
    } catch (error) {
      if (kindOf(error) !== ErrorKinds.POISON) throw error
      if (group.length === 1) {
        refused.push({ item: group[0]!, error })
        return
      }
      const middle = group.length >>> 1
      await run(group.slice(0, middle))
      await run(group.slice(middle))
      return
    }
    embedChannel.publish({
      embedder: embedder.name,
      texts: group.length,
      seconds: (performance.now() - started) / 1000
    } satisfies EmbedMessage)
    group.forEach((item, i) => {
      vectors.set(item, out[i]!)
    })
  }
  if (items.length > 0) await run(items)
  return { vectors, refused }
}
