export * from './metrics.ts'
export * from './propagation.ts'
export * from './tracing.ts'
