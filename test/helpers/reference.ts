import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { REPO_ROOT } from '../../scripts/stack/config.ts'

/**
 * Published specifications the deploy tests validate against (`../shared/reference/` beside the repository, the
 * same layout on CI; SFM_REFERENCE_DIR points elsewhere). Read in place, never copied into the repo.
 */
export const REFERENCE_DIR = process.env.SFM_REFERENCE_DIR || resolve(REPO_ROOT, '..', 'shared', 'reference')

/** Absolute path of a reference file, or undefined when it is not there. */
export function referenceFile(relative: string): string | undefined {
  const path = resolve(REFERENCE_DIR, relative)
  return existsSync(path) ? path : undefined
}

/** The skip reason to print when a reference file is missing. */
export function missingReference(relative: string): string {
  return `${resolve(REFERENCE_DIR, relative)} is not there (the shared reference data sits beside the repository)`
}
