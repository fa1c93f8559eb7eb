export { breaks, type Direction, Directions, modeRules, type SchemaChange } from './change.ts'
export {
  type CompatibilityIssue,
  type CompatibilityResult,
  checkCompatibility,
  checkSchemasDir,
  formatIssue,
  type SubjectReport,
  type VersionedSchema
} from './check.ts'
export { diffSchemas } from './diff.ts'
