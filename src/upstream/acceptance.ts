import type { Ajv, ValidateFunction } from 'ajv'
import { lazyPackage } from '../core/lazy-package.ts'
import type { JsonResult } from '../core/pipeline.ts'

// Loaded by the first race that checks a JSON schema, not at start (src/core/lazy-package.ts says why).
const ajvPackage = lazyPackage<typeof import('ajv')>('ajv')

/**
 * Whether a complete answer is acceptable to a race: a 2xx with content (text or tool calls), no refusal,
 * and, when the request asked for a JSON schema, content that parses and validates against it. Schemas
 * are compiled once and kept (bounded); `pattern` keywords are not checked, since a client-chosen regular
 * expression run on model output could backtrack without bound.
 */
export class Acceptance {
  private ajv: Ajv | undefined
  private readonly compiled = new Map<string, ValidateFunction | null>()

  constructor(private readonly maxSchemas = 256) {}

  acceptable(result: JsonResult, request: Record<string, unknown>, opts: { jsonSchema: boolean; noRefusal: boolean }): boolean {
    if (result.status < 200 || result.status >= 300) return false
    const choice = (result.body.choices as { message?: { content?: unknown; refusal?: unknown; tool_calls?: unknown } }[] | undefined)?.[0]
    const message = choice?.message
    if (!message) return false
    if (opts.noRefusal && typeof message.refusal === 'string' && message.refusal !== '') return false
    const hasTools = Array.isArray(message.tool_calls) && message.tool_calls.length > 0
    const content = typeof message.content === 'string' ? message.content : ''
    if (!hasTools && content.trim() === '') return false
    const format = request.response_format as { type?: unknown; json_schema?: { schema?: unknown } } | undefined
    if (opts.jsonSchema && format?.type === 'json_schema' && !hasTools) {
      const validate = this.validator(format.json_schema?.schema)
      if (validate === null) return true // a schema we cannot compile is the backend's to honour
      let parsed: unknown
      try {
        parsed = JSON.parse(content)
      } catch {
        return false
      }
      return validate(parsed) === true
    }
    return true
  }

  private validator(schema: unknown): ValidateFunction | null {
    if (!schema || typeof schema !== 'object') return null
    const key = JSON.stringify(schema)
    if (key.length > 100_000) return null
    const known = this.compiled.get(key)
    if (known !== undefined) return known
    let v: ValidateFunction | null
    try {
      this.ajv ??= new (ajvPackage().Ajv)({ strict: false, allErrors: false, validateSchema: false })
      v = this.ajv.compile(withoutPatterns(schema))
    } catch {
      v = null
    }
    if (this.compiled.size >= this.maxSchemas) this.compiled.delete(this.compiled.keys().next().value!)
    this.compiled.set(key, v)
    return v
  }
}

/** A copy of the schema without `pattern` / `patternProperties` (walked without recursion). */
function withoutPatterns(schema: object): object {
  const root = structuredClone(schema) as Record<string, unknown>
  const stack: unknown[] = [root]
  while (stack.length) {
    const v = stack.pop()
    if (Array.isArray(v)) { for (const x of v) stack.push(x); continue }
    if (!v || typeof v !== 'object') continue
    const o = v as Record<string, unknown>
    delete o.pattern
    if (o.patternProperties) { o.additionalProperties ??= true; delete o.patternProperties }
    for (const x of Object.values(o)) stack.push(x)
  }
  return root
}
