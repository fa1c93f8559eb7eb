import { errorMessage } from '../errors.ts'

/**
 * One line for an operator. @platformatic/kafka wraps the broker's answer in `MultipleErrors` (`errors`) and
 * `cause`, and the outer message ("Creating topics failed.") alone says nothing; walk a few levels down.
 */
export function describeError(error: unknown, maxParts = 6): string {
  const parts = [errorMessage(error)]
  const seen = new Set<unknown>([error])
  const queue: unknown[] = []
  const children = (e: unknown) => {
    const o = e as { errors?: unknown; cause?: unknown }
    const next = Array.isArray(o.errors) ? [...o.errors, o.cause] : [o.cause]
    for (const child of next) {
      if (child && typeof child === 'object' && !seen.has(child)) {
        seen.add(child)
        queue.push(child)
      }
    }
  }
  children(error)
  while (queue.length > 0 && parts.length < maxParts) {
    const next = queue.shift()
    parts.push(errorMessage(next))
    children(next)
  }
  return [...new Set(parts)].join(': ')
}
