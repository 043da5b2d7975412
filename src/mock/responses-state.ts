/**
 * The mock's own Responses state, as OpenAI keeps it: every stored response (store not false) by id, with the
 * conversation it ends (chat-like messages, for seeding and token counts), per mock server. A follow-up naming an
 * id this server never issued (or deleted) is refused as OpenAI refuses it; GET and DELETE work on the ids.
 */
type Json = Record<string, unknown>

export interface MockStoredResponse {
  readonly messages: readonly unknown[]
  readonly response: Json
}

/** Most responses one mock server remembers; the oldest are forgotten first. */
const MAX_KEPT = 2000

const STATES = new WeakMap<object, Map<string, MockStoredResponse>>()

/** The state of the server `owner` (any per-server object, e.g. its request log). */
export function responsesState(owner: object): Map<string, MockStoredResponse> {
  let s = STATES.get(owner)
  if (!s) STATES.set(owner, (s = new Map()))
  return s
}

export function keep(state: Map<string, MockStoredResponse>, id: string, r: MockStoredResponse): void {
  state.set(id, r)
  if (state.size > MAX_KEPT) state.delete(state.keys().next().value!)
}

export function previousNotFound(id: string): Json {
  return { error: { message: `Previous response with id '${id.slice(0, 128)}' not found.`, type: 'invalid_request_error', param: 'previous_response_id', code: 'previous_response_not_found' } }
}

export function responseNotFound(id: string): Json {
  return { error: { message: `No response found with id '${id.slice(0, 128)}'.`, type: 'invalid_request_error', param: null, code: null } }
}
