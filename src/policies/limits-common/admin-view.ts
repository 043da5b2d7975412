import type { Runtime } from '../../server/runtime.ts'
import { isLimitInspector, type LimitView } from './index.ts'

/**
 * The state of every limit policy's counter for one counter-key value (what `counterKey` evaluates to,
 * e.g. a consumer id), across the global scope and every product: for `GET /admin/limits?key=...`.
 */
export async function limitsForKey(rt: Runtime, keyValue: string): Promise<LimitView[]> {
  const seen = new Set<object>()
  const pipelines = [rt.pipelineFor(null), ...rt.snapshot.config.products.map((p) => rt.pipelineFor(p.id))]
  const views: Promise<LimitView>[] = []
  for (const pl of pipelines) {
    for (const p of pl.policies) {
      if (seen.has(p) || !isLimitInspector(p)) continue
      seen.add(p)
      views.push(p.inspect(keyValue))
    }
  }
  return Promise.all(views)
}
