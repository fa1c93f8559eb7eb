import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import { REPO_ROOT } from '../../scripts/stack/config.ts'

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

/** One `${…}` reference found while interpolating. */
export interface VariableUse {
  name: string
  /** `${X:-d}`, `${X-d}` or `${X:+a}`: the file works without the variable. */
  hasDefault: boolean
  /** `${X:?message}` / `${X?message}`: compose refuses to start without it. */
  required: boolean
}

const VARIABLE = /\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g

/**
 * Compose's interpolation (https://compose-spec.io, "Interpolation"): `$$` is a literal `$`; `${X}`, `$X`,
 * `${X:-default}` (unset or empty), `${X-default}` (unset), `${X:?err}` / `${X?err}` (error), `${X:+alt}` / `${X+alt}`.
 * Missing variables without a default become '' as compose does (with a warning); `?` forms throw.
 */
export function interpolate(text: string, env: Readonly<Record<string, string>>, uses: VariableUse[] = []): string {
  return text.replace(VARIABLE, (match, braced: string | undefined, op: string | undefined, arg = '', bare) => {
    if (match === '$$') return '$'
    const name = (braced ?? bare) as string
    const value = env[name]
    const unsetOrEmpty = value === undefined || value === ''
    const colon = op?.startsWith(':') ?? false
    const kind = op?.slice(-1)
    uses.push({ name, hasDefault: kind === '-' || kind === '+', required: kind === '?' })
    const missing = colon ? unsetOrEmpty : value === undefined
    switch (kind) {
      case '-':
        return missing ? interpolate(arg, env, uses) : (value as string)
      case '?':
        if (missing) throw new Error(`\${${name}} is required: ${arg}`)
        return value as string
      case '+':
        return missing ? '' : interpolate(arg, env, uses)
      default:
        return value ?? ''
    }
  })
}

function interpolateDeep(value: Json, env: Readonly<Record<string, string>>, uses: VariableUse[]): Json {
  if (typeof value === 'string') return interpolate(value, env, uses)
  if (Array.isArray(value)) return value.map((item) => interpolateDeep(item, env, uses))
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateDeep(v, env, uses)]))
  }
  return value
}

/** `NAME=value` lines of an env file (comments and blank lines skipped), as compose reads `.env`. */
export function readEnvFile(path: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line)
    if (match !== null) out[match[1]!] = match[2]!.trim()
  }
  return out
}

export interface LoadedCompose {
  /** After YAML merge keys and interpolation with `.env.example`: what `docker compose config` would see. */
  doc: { [key: string]: Json }
  /** As written (merge keys resolved, no interpolation). */
  raw: { [key: string]: Json }
  env: Record<string, string>
  uses: VariableUse[]
}

export const COMPOSE_FILE = join(REPO_ROOT, 'docker-compose.dev.yml')
export const ENV_EXAMPLE = join(REPO_ROOT, '.env.example')

/** docker-compose.dev.yml as a developer who ran `cp .env.example .env` gets it. */
export function loadCompose(file = COMPOSE_FILE, envFile = ENV_EXAMPLE): LoadedCompose {
  // Merge keys (`<<: *anchor`) are YAML 1.1; compose resolves them, so the parser must too.
  const raw = parse(readFileSync(file, 'utf8'), { merge: true }) as { [key: string]: Json }
  const env = readEnvFile(envFile)
  const uses: VariableUse[] = []
  const doc = interpolateDeep(raw, env, uses) as { [key: string]: Json }
  return { doc, raw, env, uses }
}
