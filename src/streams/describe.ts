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
const PIPELINE_OPERATORS = Symbol.for('sfm.pipeline-operators')

type Operator = (input: unknown) => unknown
type Tagged = {
  [OPERATOR_INFO]?: OperatorInfo
  [PIPELINE_INFO]?: readonly OperatorInfo[]
  [PIPELINE_OPERATORS]?: readonly Operator[]
}

/** Attaches `info` to an operator function (returns the same function). */
export function describeOperator<F extends object>(operator: F, info: OperatorInfo): F {
  ;(operator as Tagged)[OPERATOR_INFO] = info
  return operator
}

/**
 * rxjs `pipe`, remembering its operators so the topology graph can name them. A plain `pipe(...)` works the same
 * at run time, but shows in the graph as one node, "pipeline".
 */
export const pipeline: typeof pipe = ((...operators: Operator[]) => {
  const piped = (pipe as (...fns: Operator[]) => Operator)(...operators)
  const infos = operators.flatMap((op) => operatorInfos(op) ?? [{ name: op.name || 'operator' }])
  ;(piped as Tagged)[PIPELINE_INFO] = infos
  // The same list as functions, one per info (a nested pipeline flattened alike): the runtime counts after each.
  ;(piped as Tagged)[PIPELINE_OPERATORS] = operators.flatMap((op) => pipelineOperators(op) ?? [op])
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

/**
 * The operator functions a function stands for, one per entry of `operatorInfos`: a `pipeline(...)`'s operators, a
 * described operator itself, or undefined (a plain function: one node).
 */
export function pipelineOperators(operator: unknown): readonly Operator[] | undefined {
  if (typeof operator !== 'function') return undefined
  const tagged = operator as Tagged
  if (tagged[PIPELINE_OPERATORS]) return tagged[PIPELINE_OPERATORS]
  if (tagged[OPERATOR_INFO]) return [operator as Operator]
  return undefined
}
