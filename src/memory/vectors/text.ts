import { canonicalJson } from '../../embedders/text.ts'
import type { MemoryEvent } from '../event.ts'

/** Longest text handed to an embedder, in UTF-16 code units; longer texts are cut (models truncate anyway). */
export const MAX_EMBED_TEXT_LENGTH = 32_768

/**
 * The text a memory is embedded from — the documented rule:
 *
 * 1. `payload.text` when it is a string: that is what the memory says.
 * 2. Otherwise the canonical JSON of the whole `payload` (object keys sorted, no whitespace), so the same payload
 *    always embeds the same way whatever order its producer wrote the keys in.
 *
 * Returns undefined when there is nothing to embed — no payload, a JSON null, `{}` or `[]`, or a blank text — and
 * the caller dead-letters the event with that reason.
 */
export function embeddingText(event: Pick<MemoryEvent, 'payload'>): string | undefined {
  const payload = event.payload
  if (payload === undefined || payload === null) return undefined
  if (typeof payload === 'object' && Object.keys(payload).length === 0) return undefined
  let text: string
  if (
    typeof payload === 'object' &&
    !Array.isArray(payload) &&
    typeof (payload as { text?: unknown }).text === 'string'
  ) {
    text = (payload as { text: string }).text
  } else if (typeof payload === 'string') {
    text = payload
  } else {
    text = canonicalJson(payload)
  }
  if (text.trim().length === 0) return undefined
  return text.length > MAX_EMBED_TEXT_LENGTH ? text.slice(0, MAX_EMBED_TEXT_LENGTH) : text
}
