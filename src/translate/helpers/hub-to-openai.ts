/**
 * A hub body made from another front door's request (e.g. `/v1/messages`) carries hub extensions an OpenAI-schema
 * backend would refuse or misread: thinking blocks and `thinking`, `top_k`, cache_control marks, a tool result's
 * `is_error`. They are dropped here by the safe-omission rule (docs/translation.md) and named in x-sluice-omitted.
 * Requests from the OpenAI front door never come here: their bytes go up as the client sent them.
 */
type Json = Record<string, unknown>

export function hubForOpenAI(hub: Json): { body: Json; omitted: string[] } {
  const omitted = new Set<string>()
  const body: Json = { ...hub }
  for (const k of ['thinking', 'top_k'] as const) {
    if (body[k] !== undefined) {
      delete body[k]
      omitted.add(k)
    }
  }
  if (Array.isArray(hub.messages)) {
    body.messages = (hub.messages as Json[]).map((m) => {
      let out = m
      const drop = (k: string, name: string) => {
        if (out[k] === undefined) return
        if (out === m) out = { ...m }
        delete out[k]
        omitted.add(name)
      }
      drop('thinking_blocks', 'messages[].thinking_blocks')
      drop('reasoning_content', 'messages[].reasoning_content')
      drop('is_error', 'messages[].is_error')
      if (Array.isArray(m.content) && (m.content as Json[]).some((p) => p && p.cache_control !== undefined)) {
        if (out === m) out = { ...m }
        out.content = (m.content as Json[]).map(({ cache_control: _c, ...rest }) => rest)
        omitted.add('cache_control')
      }
      return out
    })
  }
  if (Array.isArray(hub.tools) && (hub.tools as Json[]).some((t) => t && t.cache_control !== undefined)) {
    body.tools = (hub.tools as Json[]).map(({ cache_control: _c, ...rest }) => rest)
    omitted.add('cache_control')
  }
  return { body, omitted: [...omitted] }
}
