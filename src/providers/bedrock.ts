import type { Operation } from '../core/context.ts'
import type { BackendConfig } from '../config/schema.ts'
import { EventStreamParser } from '../translate/helpers/aws-eventstream.ts'
import { bedrockCodec } from '../translate/openai-to-bedrock.ts'
import { splitBase, type Provider } from './types.ts'

/** The region a Bedrock backend runs in: its own `region`, else the one in `auth.awsSigV4`. */
export function bedrockRegion(backend: BackendConfig): string | undefined {
  return backend.region ?? backend.auth?.awsSigV4?.region
}

/**
 * RFC 3986 encoding of one path segment, as the AWS SDKs do it (encodeURIComponent leaves !'()* alone):
 * model ids, ARNs (`arn:aws:bedrock:us-east-1:123:inference-profile/us.anthropic…`) and inference profile
 * ids all become a single segment.
 */
export function encodeModelId(modelId: string): string {
  return encodeURIComponent(modelId).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
}

/**
 * Amazon Bedrock Runtime, Converse API: `POST /model/{modelId}/converse` and `/converse-stream` (a binary
 * application/vnd.amazon.eventstream answer). Requests are SigV4-signed by credentials/sigv4.ts; a Bedrock API
 * key (`auth.apiKey`) goes as a bearer token instead.
 */
export const bedrock: Provider = {
  type: 'bedrock',
  speaks: 'bedrock',
  operations: new Set<Operation>(['chat.completions']),
  defaultUrl(backend) {
    const region = bedrockRegion(backend)
    return region ? `https://bedrock-runtime.${region}.amazonaws.com` : undefined
  },
  target(backend, _operation, upstreamModel, baseUrl, stream) {
    const { origin, prefix } = splitBase(baseUrl)
    const headers: Record<string, string> = { ...backend.headers }
    if (backend.auth?.apiKey) headers.authorization = `Bearer ${backend.auth.apiKey}`
    return { origin, path: `${prefix}/model/${encodeModelId(upstreamModel)}/${stream ? 'converse-stream' : 'converse'}`, headers }
  },
  codec: bedrockCodec,
  streamContentType: 'application/vnd.amazon.eventstream',
  streamParser: () => new EventStreamParser(),
}
