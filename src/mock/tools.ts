/**
 * When the mock answers with a tool call, and with which arguments: one rule for every dialect.
 *
 *   x-mock-tool-call: NAME       call the tool NAME (one of the request's tools); `*` = the first tool
 *   x-mock-tool-args: JSON       its arguments (default: made from the tool's JSON schema)
 *   x-mock-tool-calls: N         N parallel calls (of NAME, or of the first N tools)
 *   a marker in the last user text: [[mock-tool:NAME {json arguments}]]  (what agents such as Claude Code can
 *   carry in a prompt, since they send no custom headers)
 *   tool_choice that demands a call (OpenAI `required` / a named function; Anthropic `any` / `tool`)
 *
 * A header or marker only applies to a turn that ends with user text: once the tool result comes back, the mock
 * answers in text, so an agent's loop ends. A demanding tool_choice always gets its call.
 *
 *   x-mock-tool-echo: true       that text answer quotes the tool results instead of the mock's usual prose, so a
 *                                test can see an agent's tool really ran and its output made the round trip
 *                                (Codex `cat answer.txt` → the number in its final message)
 */
import type http from 'node:http'
import { countTextTokens } from './text.ts'
import { header, hnum } from './engine.ts'

export interface ToolDef {
  readonly name: string
  readonly schema: Record<string, unknown>
}

export interface PlannedCall {
  readonly name: string
  /** The arguments as JSON text (what OpenAI sends; Anthropic's `input` is its parse). */
  readonly arguments: string
}

/** What the dialect knows about the request, in neutral terms. */
export interface ToolRequest {
  readonly tools: readonly ToolDef[]
  /** 'auto' | 'none' | 'any' (a call is required) | { name } (that tool is required). */
  readonly choice: 'auto' | 'none' | 'any' | { readonly name: string }
  /** Text of the last non-system message when it is the user's own text (not a tool result); null otherwise. */
  readonly lastUserText: string | null
}

const MARKER = /\[\[mock-tool:([A-Za-z0-9_.-]{1,64})(?:\s+(\{[\s\S]*?\}))?\]\]/

export function planToolCalls(req: http.IncomingMessage, r: ToolRequest): PlannedCall[] {
  if (r.tools.length === 0 || r.choice === 'none') return []
  const byName = new Map(r.tools.map((t) => [t.name, t]))
  const argsHeader = header(req, 'x-mock-tool-args')
  const count = Math.max(1, Math.min(8, Math.trunc(hnum(req, 'x-mock-tool-calls') ?? 1)))
  const make = (tool: ToolDef, args?: string): PlannedCall => ({ name: tool.name, arguments: args ?? JSON.stringify(argsFor(tool.schema)) })
  if (typeof r.choice === 'object') {
    const tool = byName.get(r.choice.name)
    return tool ? [make(tool, argsHeader)] : []
  }
  if (r.lastUserText !== null) {
    const marker = MARKER.exec(r.lastUserText)
    if (marker) {
      const tool = byName.get(marker[1]!)
      if (tool) return [make(tool, marker[2])]
    }
    const wanted = header(req, 'x-mock-tool-call')
    if (wanted) {
      if (wanted === '*') return r.tools.slice(0, count).map((t) => make(t, argsHeader))
      const tool = byName.get(wanted)
      if (tool) return Array.from({ length: count }, () => make(tool, argsHeader))
    }
  }
  if (r.choice === 'any') return [make(r.tools[0]!, argsHeader)]
  return []
}

/** Deterministic arguments satisfying a JSON schema's required properties (strings "mock", numbers 1…). */
export function argsFor(schema: Record<string, unknown>): unknown {
  switch (schema.type) {
    case 'string':
      return Array.isArray(schema.enum) && schema.enum.length ? schema.enum[0] : 'mock'
    case 'number':
    case 'integer':
      return 1
    case 'boolean':
      return true
    case 'array':
      return []
    case 'object':
    case undefined: {
      const props = (schema.properties ?? {}) as Record<string, Record<string, unknown>>
      const required = Array.isArray(schema.required) ? (schema.required as string[]) : Object.keys(props)
      const out: Record<string, unknown> = {}
      for (const k of required) out[k] = argsFor(props[k] ?? { type: 'string' })
      return out
    }
    default:
      return null
  }
}

/** The arguments split into the small pieces a model streams them in (many events per call). */
export function argumentPieces(args: string, size = 8): string[] {
  const out: string[] = []
  for (let i = 0; i < args.length; i += size) out.push(args.slice(i, i + size))
  return out
}

/** Completion tokens of tool calls: name plus arguments, with the mock's tokenizer. */
export function toolCallTokens(calls: readonly PlannedCall[]): number {
  let n = 0
  for (const c of calls) n += countTextTokens(c.name) + countTextTokens(c.arguments)
  return n
}

/** Deterministic call ids (the same request gives the same ids, as every other mock figure). */
export function callId(prefix: string, seed: number, i: number): string {
  return `${prefix}${(seed >>> 0).toString(36)}${i.toString(36).padStart(2, '0')}`.padEnd(prefix.length + 12, '0')
}

/** The longest tool result an echo quotes (a tool may return megabytes; the answer stays small). */
const ECHO_MAX = 2000

/**
 * The text answer for a turn that ends with tool results when `x-mock-tool-echo` asks for it:
 * `Tool result: …` (the results joined, bounded); null otherwise (the dialect answers with its usual prose).
 */
export function toolEchoAnswer(req: http.IncomingMessage, toolResults: readonly string[] | null): string | null {
  const h = header(req, 'x-mock-tool-echo')
  if (!toolResults || toolResults.length === 0 || !h || h === 'false' || h === '0') return null
  const joined = toolResults.join('\n').trim()
  return `Tool result: ${joined.length > ECHO_MAX ? joined.slice(0, ECHO_MAX) : joined}`
}

/** An answer text in the word-sized pieces a stream carries (the pieces join back to the text exactly). */
export function answerPieces(text: string): string[] {
  return text.match(/\s*\S+|\s+$/g) ?? [text]
}
