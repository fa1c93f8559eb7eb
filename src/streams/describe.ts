import { pipe } from 'rxjs'

/**
 * What a pipeline operator says about itself, for the topology graph (`npm start -- <topology> --graph`, the
 * console): its name, the stage it dead-letters or drops under, and a short detail (its main settings).
 */
export interface OperatorInfo {
  readonly name: string
  readonly stage?: string
  /** True when it dead-letters items (poison) under `stage`; false when it only drops (acks) them. */
  readonly deadLetters?: boolean
  readonly detail?: string
}

const OPERATOR_INFO = Symbol.for('sfm.operator-info')
const PIPELINE_INFO = Symbol.for('sfm.pipeline-info')

type Tagged = { [OPERATOR_INFO]?: OperatorInfo; [PIPELINE_INFO]?: readonly OperatorInfo[] }

/** Attaches `info` to an operator function (returns the same function). */
export function describeOperator<F extends object>(operator: F, info: OperatorInfo): F {
  ;(operator as Tagged)[OPERATOR_INFO] = info
  return operator
}

/**
 * rxjs `pipe`, remembering its operators so the topology graph can name them. A plain `pipe(...)` works the same
 * at run time, but shows in the graph as one node, "pipeline".
 */
export const pipeline: typeof pipe = ((...operators: Array<(input: unknown) => unknown>) => {
  const piped = (pipe as (...fns: Array<(input: unknown) => unknown>) => (input: unknown) => unknown)(...operators)
  const infos = operators.flatMap((op) => operatorInfos(op) ?? [{ name: op.name || 'operator' }])
  ;(piped as Tagged)[PIPELINE_INFO] = infos
  return piped
}) as typeof pipe

/** The operators a function stands for: a `pipeline(...)`'s list, a described operator, or undefined. */
export function operatorInfos(operator: unknown): readonly OperatorInfo[] | undefined {
  if (typeof operator !== 'function') return undefined
  const tagged = operator as Tagged
  if (tagged[PIPELINE_INFO]) return tagged[PIPELINE_INFO]
  if (tagged[OPERATOR_INFO]) return [tagged[OPERATOR_INFO]]
  return undefined
}
