/**
 * JSON with object keys sorted by code unit at every level (RFC 8785 orders keys the same way; numbers here are
 * rendered by JSON.stringify). Deterministic for any JSON value.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null'
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`
  const record = value as Record<string, unknown>
  const keys = Object.keys(record)
    .filter((k) => record[k] !== undefined)
    .sort()
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`).join(',')}}`
}

/** The first `max` characters of a text on one line, for recall output and the stored excerpt. */
export function excerpt(text: string, max = 240): string {
  // A long text is cut first: collapsing whitespace in a prefix gives a prefix of the collapsed whole (a whitespace
  // run cut at the end still becomes one space), so when the collapsed prefix is longer than `max` its first
  // `max - 1` characters are the answer. Saves scanning the rest of every 1 KB+ memory for an excerpt of 240.
  if (text.length > 2 * max) {
    const head = text
      .slice(0, 2 * max)
      .replace(/\s+/g, ' ')
      .trimStart()
    if (head.length > max + 1) return `${head.slice(0, max - 1)}…`
  }
  const line = text.replace(/\s+/g, ' ').trim()
  return line.length > max ? `${line.slice(0, max - 1)}…` : line
}
