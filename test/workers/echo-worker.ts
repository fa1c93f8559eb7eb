/** A worker for test/workers/rpc.test.ts. */

import { PoisonError } from '../../src/errors.ts'
import { serveRpc } from '../../src/workers/rpc.ts'

serveRpc({
  echo: (value: unknown) => value,
  square: (values: Float64Array) => values.map((v) => v * v),
  slow: async (ms: number) => {
    await new Promise((resolve) => setTimeout(resolve, ms))
    return ms
  },
  refuse: (why: string) => {
    throw new PoisonError(why, { code: 'SFM_SINK_REJECTED' })
  },
  crash: () => process.exit(3),
  database: () => {
    // What a database driver throws: not the framework's error, with a SQLSTATE and more.
    throw Object.assign(new Error('duplicate key value violates unique constraint "x_pkey"'), {
      code: '23505',
      constraint: 'x_pkey',
      severity: 'ERROR',
      position: 7
    })
  }
})
