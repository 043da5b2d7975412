/** OpenAI-shaped error bodies for the mock LLM. */

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

const DEFAULTS: Record<number, [type: string, code: string | null, message: string]> = {
  400: ['invalid_request_error', null, 'Bad request (mock).'],
  401: ['invalid_request_error', 'invalid_api_key', 'Incorrect API key provided (mock).'],
  403: ['invalid_request_error', 'permission_denied', 'You are not allowed to access this resource (mock).'],
  404: ['invalid_request_error', 'model_not_found', 'The model does not exist or you do not have access to it (mock).'],
  408: ['timeout', 'timeout', 'Request timed out (mock).'],
  409: ['invalid_request_error', 'conflict', 'Conflict (mock).'],
  413: ['invalid_request_error', 'request_too_large', 'Request too large (mock).'],
  422: ['invalid_request_error', null, 'Unprocessable entity (mock).'],
  429: ['requests', 'rate_limit_exceeded', 'Rate limit reached for requests (mock). Please try again later.'],
  500: ['server_error', null, 'The server had an error while processing your request. Sorry about that! (mock)'],
  502: ['server_error', 'bad_gateway', 'Bad gateway (mock).'],
  503: ['server_error', 'service_unavailable', 'The engine is currently overloaded, please try again later. (mock)'],
  504: ['timeout', 'gateway_timeout', 'Gateway timeout (mock).'],
};

export function errorBody(
  status: number,
  message?: string,
  opts: { type?: string; code?: string | null; param?: string | null } = {},
): OpenAIErrorBody {
  const d = DEFAULTS[status] ?? [status >= 500 ? 'server_error' : 'invalid_request_error', null, `Mock error ${status}.`];
  return {
    error: {
      message: message ?? d[2],
      type: opts.type ?? d[0],
      param: opts.param ?? null,
      code: opts.code !== undefined ? opts.code : d[1],
    },
  };
}
