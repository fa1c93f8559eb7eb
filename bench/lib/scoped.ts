import { Admin } from '@platformatic/kafka'

/**
 * Environment variables set (or, when undefined, removed) for the duration of `fn`, then restored: topologies such
 * as memoryTopology() read their configuration from process.env.
 */
export async function withEnv<R>(vars: Record<string, string | undefined>, fn: () => Promise<R>): Promise<R> {
  const saved = new Map(Object.keys(vars).map((k) => [k, process.env[k]]))
  const apply = (entries: Iterable<[string, string | undefined]>) => {
    for (const [k, v] of entries) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
  apply(Object.entries(vars))
  try {
    return await fn()
  } finally {
    apply(saved)
  }
}

/** An Admin client on `brokers` for the duration of `fn`. */
export async function withAdmin<R>(brokers: string[], fn: (admin: Admin) => Promise<R>): Promise<R> {
  const admin = new Admin({ clientId: 'sfm-bench-admin', bootstrapBrokers: brokers })
  try {
    return await fn(admin)
  } finally {
    await admin.close()
  }
}
