import { FatalError } from '../errors.ts'
import type { Logger } from '../logger.ts'
import { redriveDlq } from '../ops/dlq.ts'
import { openLogAccess } from '../ops/log.ts'
import { RequestError } from './data.ts'
import type { Redrive, RedriveSelection } from './server.ts'

/**
 * The console's redrive: `redriveDlq` of src/ops/dlq.ts, the code `npm run dlq -- redrive` runs, on the log the
 * runner reads (Kafka when `KAFKA_BROKERS` is set, else the embedded log under `SFM_DATA_DIR`). Each request opens
 * its own log access and closes it; requests run one at a time, so two clicks never send the same letters twice.
 * A refusal of the ops module (a letter without `sfm.dlq.*` headers, a source topic that no longer exists) is a
 * 409 with its message: nothing was changed.
 */
export function logRedrive(dlqTopic: string, env: NodeJS.ProcessEnv = process.env, logger?: Logger): Redrive {
  let last: Promise<unknown> = Promise.resolve()
  const run = async (selection: RedriveSelection) => {
    const access = openLogAccess({ env })
    try {
      const report = await redriveDlq(access, {
        topic: dlqTopic,
        ...(selection.stage === undefined ? {} : { stage: selection.stage }),
        ...(selection.errorCode === undefined ? {} : { errorCode: selection.errorCode })
      })
      const what = [selection.stage && `stage ${selection.stage}`, selection.errorCode && `code ${selection.errorCode}`]
      logger?.info(
        `console: redrove ${report.redriven} of ${report.matched} dead letter(s) ` +
          `(${what.filter(Boolean).join(', ') || 'every letter'}) from ${dlqTopic} on ${access.description}`
      )
      return report
    } catch (error) {
      if (error instanceof FatalError) throw new RequestError(409, error.message)
      throw error
    } finally {
      await access.close()
    }
  }
  return (selection) => {
    const next = last.then(
      () => run(selection),
      () => run(selection)
    )
    last = next.catch(() => {})
    return next
  }
}
