import type { Compatibility } from '../../schemas.ts'

/**
 * One difference between two JSON Schemas, with what it means for each reading direction.
 *
 * The verdicts follow the model both Apicurio Registry and Confluent Schema Registry use for JSON Schema: a change is
 * *backward compatible* when the new schema accepts every value the old one accepted (consumers on the new schema
 * read data written under the old one), and *forward compatible* when the old schema accepts every value the new one
 * accepts (consumers still on the old schema read data written under the new one). Registries compute FORWARD by
 * diffing in the other direction; here every change carries both verdicts, so one walk names the change the way the
 * author made it ("property added") whichever way it breaks.
 */
export interface SchemaChange {
  /** Stable rule name, e.g. `REQUIRED_PROPERTY_ADDED` (see docs/SCHEMAS.md for the list). */
  readonly type: string
  /** JSON Pointer fragment into the schema where the change is, e.g. `#/properties/op/enum`. */
  readonly path: string
  /** The new schema accepts every value the old one did (new readers, old data). */
  readonly backward: boolean
  /** The old schema accepts every value the new one does (old readers, new data). */
  readonly forward: boolean
  /** One line for people: what changed, and why it breaks when it does. */
  readonly message: string
  /**
   * Set when the checker cannot decide the change: the construct it cannot reason about (`if`, `$dynamicRef`,
   * `keyword "foo"`, `$ref "…"`). Every direction it could not prove is false (fails closed: a break), and the
   * message starts with "cannot decide".
   */
  readonly undecided?: string
}

/** The two reading directions a mode is made of. */
export const Directions = {
  BACKWARD: 'BACKWARD',
  FORWARD: 'FORWARD'
} as const
export type Direction = (typeof Directions)[keyof typeof Directions]

/** The directions a mode checks, and whether it checks every earlier version or only the latest. */
export function modeRules(mode: Compatibility): { directions: Direction[]; transitive: boolean } {
  switch (mode) {
    case 'BACKWARD':
      return { directions: ['BACKWARD'], transitive: false }
    case 'BACKWARD_TRANSITIVE':
      return { directions: ['BACKWARD'], transitive: true }
    case 'FORWARD':
      return { directions: ['FORWARD'], transitive: false }
    case 'FORWARD_TRANSITIVE':
      return { directions: ['FORWARD'], transitive: true }
    case 'FULL':
      return { directions: ['BACKWARD', 'FORWARD'], transitive: false }
    case 'FULL_TRANSITIVE':
      return { directions: ['BACKWARD', 'FORWARD'], transitive: true }
    case 'NONE':
      return { directions: [], transitive: false }
  }
}

export function breaks(change: SchemaChange, direction: Direction): boolean {
  return direction === 'BACKWARD' ? !change.backward : !change.forward
}
