import type { ExprContext } from '../expr.ts'

/** What `/admin/budgets`, `/v1/sluice/me` and the dashboard show for one budget and one counter value. */
export interface BudgetView {
  readonly policy: string
  readonly scope: string
  readonly counterKey: string
  readonly counter: string
  readonly limitUsd: number
  readonly usedUsd: number
  readonly remainingUsd: number
  readonly usedPercent: number
  readonly period: string | number | { rolling: number }
  readonly periodStart: string | null
  readonly resetAt: string
  readonly onExceeded: string
  readonly alerts: readonly { atPercent: number; webhook: string | null }[]
}

export interface BudgetInspector {
  readonly isBudgetInspector: true
  /** The counter value this budget uses for a consumer (null when the key needs request fields). */
  counterValueFor(e: ExprContext): string | null
  inspectBudget(counterValue: string): Promise<BudgetView>
}

export function isBudgetInspector(p: unknown): p is BudgetInspector {
  return typeof p === 'object' && p !== null && (p as { isBudgetInspector?: unknown }).isBudgetInspector === true
}

export { parseThreshold } from '../../finops/thresholds.ts'
