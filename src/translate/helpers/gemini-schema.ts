import { GatewayError, GW_ERR } from '../../core/errors.ts'

/**
 * JSON Schema (what OpenAI tools and `response_format.json_schema` carry) → Gemini's `Schema`, the OpenAPI
 * 3.0 subset `functionDeclarations[].parameters` and `generationConfig.responseSchema` accept.
 *
 * Converted: `type: [T, "null"]` → `type: T, nullable: true`; `const` → a one-value `enum`; `oneOf` → `anyOf`
 * (every branch Gemini may produce is valid for oneOf's schema too); local `$ref`s into `$defs`/`definitions`
 * are inlined (a recursive one is refused); `exclusiveMinimum`/`exclusiveMaximum` numbers become
 * `minimum`/`maximum` (bounds Gemini treats as hints anyway).
 * Dropped (annotations, or what Gemini's output satisfies already): `$schema`, `$id`, `$comment`,
 * `examples`, `additionalProperties: false`, `strict`, `readOnly`, `writeOnly`, `deprecated`.
 * Anything else (allOf, not, if/then/else, propertyNames, additionalProperties as a schema…) has no place in
 * the subset: `toGeminiSchema` throws UnsupportedSchema naming the keyword and where it is, and the codec sends
 * the schema as JSON Schema instead (`parametersJsonSchema` / `responseJsonSchema`, Gemini 2.5 and later).
 * A malformed schema (not an object, an unknown type) is a 400 either way.
 */

const PASS: ReadonlySet<string> = new Set([
  'format', 'title', 'description', 'nullable', 'maxItems', 'minItems', 'minProperties', 'maxProperties',
  'minLength', 'maxLength', 'pattern', 'example', 'default', 'minimum', 'maximum', 'propertyOrdering',
])
const DROP: ReadonlySet<string> = new Set(['$schema', '$id', '$comment', 'examples', 'strict', 'readOnly', 'writeOnly', 'deprecated', '$defs', 'definitions'])
const TYPES: Readonly<Record<string, string>> = { string: 'STRING', number: 'NUMBER', integer: 'INTEGER', boolean: 'BOOLEAN', array: 'ARRAY', object: 'OBJECT', null: 'NULL' }
const MAX_DEPTH = 64

type Json = Record<string, unknown>

function refuse(param: string, message: string): never {
  throw new GatewayError(GW_ERR.INVALID_REQUEST, message, { param })
}

/** A well-formed JSON Schema that uses what Gemini's OpenAPI subset cannot express. */
export class UnsupportedSchema extends GatewayError {
  constructor(message: string, param: string) {
    super(GW_ERR.INVALID_REQUEST, message, { param })
  }
}

function unsupported(param: string, message: string): never {
  throw new UnsupportedSchema(message, param)
}

export function toGeminiSchema(schema: unknown, param: string): Json {
  if (!schema || typeof schema !== 'object' || Array.isArray(schema)) refuse(param, `${param} must be a JSON Schema object.`)
  const root = schema as Json
  const defs = { ...(root.definitions as Json | undefined), ...(root.$defs as Json | undefined) }
  return convert(root, param, defs, [], 0)
}

function resolveRef(ref: string, defs: Json, param: string): Json {
  const m = /^#\/(?:\$defs|definitions)\/([^/]+)$/.exec(ref)
  const target = m ? defs[decodeURIComponent(m[1]!)] : undefined
  if (!target || typeof target !== 'object') unsupported(param, `${param}.$ref "${ref.slice(0, 100)}" does not point into $defs or definitions of the same schema; Gemini schemas cannot reference.`)
  return target as Json
}

function convert(s: Json, param: string, defs: Json, refs: string[], depth: number): Json {
  if (depth > MAX_DEPTH) refuse(param, `${param} nests deeper than ${MAX_DEPTH} levels.`)
  if (typeof s.$ref === 'string') {
    if (refs.includes(s.$ref)) unsupported(`${param}.$ref`, `${param}.$ref "${s.$ref.slice(0, 100)}" is recursive; Gemini schemas cannot express recursion.`)
    const { $ref: _r, ...rest } = s
    return convert({ ...resolveRef(s.$ref, defs, param), ...rest }, param, defs, [...refs, s.$ref], depth + 1)
  }
  const out: Json = {}
  for (const [k, v] of Object.entries(s)) {
    const at = `${param}.${k}`
    if (DROP.has(k)) continue
    if (PASS.has(k)) {
      out[k] = v
      continue
    }
    switch (k) {
      case 'type': {
        const list = Array.isArray(v) ? v : [v]
        const named = list.filter((t) => t !== 'null')
        if (named.length !== list.length) out.nullable = true
        if (named.length > 1) {
          out.anyOf = named.map((t) => ({ type: typeName(t, at) }))
          break
        }
        out.type = typeName(named[0] ?? 'null', at)
        break
      }
      case 'enum':
        if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' || x === null)) unsupported(at, `${at}: Gemini enums hold strings only.`)
        out.enum = (v as unknown[]).filter((x) => x !== null)
        if ((v as unknown[]).includes(null)) out.nullable = true
        out.type ??= 'STRING'
        break
      case 'const':
        if (typeof v !== 'string') unsupported(at, `${at}: Gemini can only pin a string value (as a one-value enum).`)
        out.enum = [v]
        out.type ??= 'STRING'
        break
      case 'exclusiveMinimum':
      case 'exclusiveMaximum':
        if (typeof v !== 'number') refuse(at, `${at} must be a number.`)
        out[k === 'exclusiveMinimum' ? 'minimum' : 'maximum'] = v
        break
      case 'properties': {
        if (!v || typeof v !== 'object' || Array.isArray(v)) refuse(at, `${at} must be an object.`)
        const props: Json = {}
        for (const [name, sub] of Object.entries(v as Json)) props[name] = sub === true ? {} : convert(asSchema(sub, `${at}.${name}`), `${at}.${name}`, defs, refs, depth + 1)
        out.properties = props
        break
      }
      case 'required':
        if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) refuse(at, `${at} must be an array of property names.`)
        out.required = v
        break
      case 'items':
        if (Array.isArray(v)) unsupported(at, `${at} as a tuple (an array of schemas) has no Gemini equivalent.`)
        out.items = convert(asSchema(v, at), at, defs, refs, depth + 1)
        break
      case 'anyOf':
      case 'oneOf': {
        if (!Array.isArray(v) || v.length === 0) refuse(at, `${at} must be a non-empty array of schemas.`)
        // [X, {type: null}] is how Pydantic/zod say "nullable X".
        const branches = (v as unknown[]).filter((b) => !(b && typeof b === 'object' && (b as Json).type === 'null' && Object.keys(b as Json).length === 1))
        if (branches.length !== v.length) out.nullable = true
        const converted = branches.map((b, i) => convert(asSchema(b, `${at}[${i}]`), `${at}[${i}]`, defs, refs, depth + 1))
        if (converted.length === 1) Object.assign(out, converted[0])
        else out.anyOf = converted
        break
      }
      case 'additionalProperties':
        if (v === false) break
        unsupported(at, `${at} (a map of free-form keys) has no Gemini equivalent; declare the properties.`)
      default:
        unsupported(at, `${at}: the JSON Schema keyword "${k.slice(0, 64)}" has no Gemini equivalent.`)
    }
  }
  return out
}

function asSchema(v: unknown, param: string): Json {
  if (!v || typeof v !== 'object' || Array.isArray(v)) refuse(param, `${param} must be a schema object.`)
  return v as Json
}

function typeName(t: unknown, param: string): string {
  const name = typeof t === 'string' ? TYPES[t] : undefined
  if (!name) refuse(param, `${param}: "${String(t).slice(0, 32)}" is not a JSON Schema type.`)
  return name
}

/** A JSON Schema for Gemini's JSON Schema fields: the `$schema` and `$comment` annotations dropped, the rest as given. */
export function jsonSchemaForGemini(schema: Json): Json {
  const { $schema: _s, $comment: _c, ...rest } = schema
  return rest
}
