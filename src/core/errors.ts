/**
 * The one registry of errors the gateway itself produces. Every error a client sees is built here,
 * so status, OpenAI `type` and `code` stay consistent and tests can assert on codes.
 */
export interface ErrorSpec {
  readonly status: number
  readonly type: string
  readonly code: string
}

export const GW_ERR = {
  INVALID_API_KEY: { status: 401, type: 'invalid_request_error', code: 'invalid_api_key' },
  /** A JWT that did not validate; the message names the reason class, never the token. */
  INVALID_TOKEN: { status: 401, type: 'invalid_request_error', code: 'invalid_token' },
  IP_NOT_ALLOWED: { status: 403, type: 'permission_error', code: 'ip_not_allowed' },
  MODEL_NOT_ALLOWED: { status: 403, type: 'permission_error', code: 'model_not_allowed' },
  QUOTA_EXCEEDED: { status: 403, type: 'insufficient_quota', code: 'quota_exceeded' },
  BUDGET_EXCEEDED: { status: 403, type: 'insufficient_quota', code: 'budget_exceeded' },
  CONSUMER_SUSPENDED: { status: 403, type: 'permission_error', code: 'consumer_suspended' },
  CONFLICT: { status: 409, type: 'invalid_request_error', code: 'conflict' },
  RATE_LIMIT_EXCEEDED: { status: 429, type: 'rate_limit_error', code: 'rate_limit_exceeded' },
  INVALID_REQUEST: { status: 400, type: 'invalid_request_error', code: 'invalid_request_error' },
  REQUEST_TOO_LARGE: { status: 413, type: 'invalid_request_error', code: 'request_too_large' },
  /** A multipart upload that ended before its last part (connection cut, or no closing boundary). */
  UPLOAD_INCOMPLETE: { status: 400, type: 'invalid_request_error', code: 'upload_incomplete' },
  MODEL_NOT_FOUND: { status: 404, type: 'invalid_request_error', code: 'model_not_found' },
  NOT_FOUND: { status: 404, type: 'invalid_request_error', code: 'not_found' },
  METHOD_NOT_ALLOWED: { status: 405, type: 'invalid_request_error', code: 'method_not_allowed' },
  UNSUPPORTED_OPERATION: { status: 400, type: 'invalid_request_error', code: 'unsupported_operation' },
  CONTENT_FILTER: { status: 400, type: 'invalid_request_error', code: 'content_filter' },
  NO_HEALTHY_BACKEND: { status: 503, type: 'service_unavailable', code: 'no_healthy_backend' },
  SERVICE_UNAVAILABLE: { status: 503, type: 'service_unavailable', code: 'service_unavailable' },
  BAD_GATEWAY: { status: 502, type: 'api_error', code: 'bad_gateway' },
  GATEWAY_TIMEOUT: { status: 504, type: 'timeout_error', code: 'gateway_timeout' },
  UNAUTHORIZED_ADMIN: { status: 401, type: 'invalid_request_error', code: 'invalid_admin_token' },
  INTERNAL: { status: 500, type: 'api_error', code: 'internal_error' },
  TOO_MANY_CONCURRENT: { status: 429, type: 'rate_limit_error', code: 'too_many_concurrent_requests' },
  SERVER_BUSY: { status: 503, type: 'service_unavailable', code: 'server_busy' },
  REQUEST_TIMEOUT: { status: 408, type: 'invalid_request_error', code: 'request_timeout' },
  HEADERS_TOO_LARGE: { status: 431, type: 'invalid_request_error', code: 'request_header_fields_too_large' },
  URI_TOO_LONG: { status: 414, type: 'invalid_request_error', code: 'uri_too_long' },
  HOST_NOT_ALLOWED: { status: 403, type: 'permission_error', code: 'host_not_allowed' },
  STREAM_DURATION_EXCEEDED: { status: 504, type: 'timeout_error', code: 'stream_duration_exceeded' },
} as const satisfies Record<string, ErrorSpec>

export type GatewayErrorCode = keyof typeof GW_ERR

export class GatewayError extends Error {
  readonly status: number
  readonly type: string
  readonly code: string
  readonly param: string | null
  /** Extra response headers (retry-after, rate-limit headers…). */
  readonly headers: Record<string, string>
  /** Extra fields of the error object (Azure's `innererror` for content filtering). */
  readonly details: Readonly<Record<string, unknown>> | null

  constructor(spec: ErrorSpec, message: string, opts: { param?: string | null; headers?: Record<string, string>; details?: Record<string, unknown> } = {}) {
    super(message)
    this.name = 'GatewayError'
    this.status = spec.status
    this.type = spec.type
    this.code = spec.code
    this.param = opts.param ?? null
    this.headers = opts.headers ?? {}
    this.details = opts.details ?? null
  }

  toJSON(): { error: { message: string; type: string; param: string | null; code: string; [extra: string]: unknown } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code, ...this.details } }
  }

  /** Anthropic's error envelope, for the `/v1/messages` front door. */
  toAnthropicJSON(): { type: 'error'; error: { type: string; message: string } } {
    return { type: 'error', error: { type: anthropicType(this.status), message: this.message } }
  }
}

function anthropicType(status: number): string {
  switch (status) {
    case 400: return 'invalid_request_error'
    case 401: return 'authentication_error'
    case 403: return 'permission_error'
    case 404: return 'not_found_error'
    case 413: return 'request_too_large'
    case 429: return 'rate_limit_error'
    case 503: case 529: return 'overloaded_error'
    default: return 'api_error'
  }
}

/** The error envelope a front door speaks: OpenAI's (also Azure OpenAI's) or Anthropic's (`/v1/messages`). */
export type ErrorShape = 'openai' | 'anthropic'

/** The one place an error becomes a response body, for JSON answers and in-stream error events alike. */
export function errorBody(err: GatewayError, shape: ErrorShape = 'openai'): Record<string, unknown> {
  return shape === 'anthropic' ? err.toAnthropicJSON() : err.toJSON()
}

export function gatewayError(spec: ErrorSpec, message: string, opts?: { param?: string | null; headers?: Record<string, string>; details?: Record<string, unknown> }): GatewayError {
  return new GatewayError(spec, message, opts)
}

/** Anything thrown that is not a GatewayError becomes a 500 with no detail leaked. */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err
  return new GatewayError(GW_ERR.INTERNAL, 'The gateway failed to process the request.')
}
