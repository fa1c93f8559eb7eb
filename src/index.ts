export * from './errors.ts'
export * from './sinks/types.ts'
export * from './streams/envelope.ts'
