/**
 * An independent AWS Signature Version 4 verifier for the mock's Bedrock dialect, written from the AWS
 * specification ("Create a signed AWS API request": canonical request, string to sign, signing key) with
 * node:crypto only. It deliberately shares no code with @smithy/signature-v4, which the gateway signs with,
 * so a signing mistake in the gateway cannot be mirrored by the check.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export interface AwsTestKey {
  readonly secretAccessKey: string;
  /** Set for temporary credentials: the request must carry (and sign) this x-amz-security-token. */
  readonly sessionToken?: string;
}

export interface SignedRequestParts {
  readonly method: string;
  /** The path as received, still percent-encoded (e.g. `/model/arn%3Aaws%3A.../converse`). */
  readonly rawPath: string;
  /** The query string as received, without `?` ('' when none). */
  readonly rawQuery: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export type Verdict =
  | { readonly ok: true; readonly accessKeyId: string; readonly region: string; readonly service: string; readonly signedHeaders: readonly string[] }
  | { readonly ok: false; readonly errorType: 'MissingAuthenticationTokenException' | 'UnrecognizedClientException' | 'InvalidSignatureException' | 'IncompleteSignatureException'; readonly message: string };

const ALGORITHM = 'AWS4-HMAC-SHA256';
/** How far x-amz-date may be from the clock (AWS allows 15 minutes). */
const MAX_SKEW_MS = 15 * 60 * 1000;

const sha256Hex = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');
const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data, 'utf8').digest();

/** URI-encode per the SigV4 rules: every byte but the unreserved A-Z a-z 0-9 - _ . ~, as %XX upper-case. */
export function uriEncode(s: string): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-_.~]/.test(c)) out += c;
    else out += '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** Canonical URI for every service but S3: the path normalised, then each segment of it URI-encoded (again). */
export function canonicalUri(rawPath: string): string {
  const segments: string[] = [];
  for (const seg of rawPath.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') segments.pop();
    else segments.push(seg);
  }
  if (segments.length === 0) return '/';
  return '/' + segments.map(uriEncode).join('/') + (rawPath.endsWith('/') ? '/' : '');
}

function decodeQueryPart(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, '%20'));
  } catch {
    return s;
  }
}

/** Canonical query: each name and value decoded then URI-encoded, sorted by name then value, joined with &. */
export function canonicalQuery(rawQuery: string): string {
  if (!rawQuery) return '';
  const pairs = rawQuery.split('&').filter((p) => p !== '').map((p) => {
    const eq = p.indexOf('=');
    const k = eq === -1 ? p : p.slice(0, eq);
    const v = eq === -1 ? '' : p.slice(eq + 1);
    return [uriEncode(decodeQueryPart(k)), uriEncode(decodeQueryPart(v))] as const;
  });
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  const joined = Array.isArray(v) ? v.join(',') : String(v);
  return joined.trim().replace(/\s+/g, ' ');
}

/** The signing key: HMAC chain over date, region, service and "aws4_request", from "AWS4" + the secret. */
export function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  return hmac(hmac(hmac(hmac('AWS4' + secret, date), region), service), 'aws4_request');
}

export function canonicalRequest(req: SignedRequestParts, signedHeaders: readonly string[]): string {
  const canonicalHeaders = signedHeaders.map((h) => `${h}:${headerValue(req.headers, h) ?? ''}\n`).join('');
  return [req.method.toUpperCase(), canonicalUri(req.rawPath), canonicalQuery(req.rawQuery), canonicalHeaders, signedHeaders.join(';'), sha256Hex(req.body)].join('\n');
}

export function stringToSign(amzDate: string, scope: string, canonical: string): string {
  return [ALGORITHM, amzDate, scope, sha256Hex(canonical)].join('\n');
}

const AUTH_RE = /^AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9a-f]{64})\s*$/;

function parseAmzDate(s: string): number | null {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return null;
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

/**
 * Checks a request's SigV4 header signature against known keys. `expectService` (e.g. `bedrock`) must be the
 * scope's service; the date must be within 15 minutes of `now`; host and x-amz-date (and the session token of
 * temporary keys) must be among the signed headers.
 */
export function verifySigV4(req: SignedRequestParts, keys: (accessKeyId: string) => AwsTestKey | undefined, expectService: string, now = Date.now()): Verdict {
  const auth = headerValue(req.headers, 'authorization');
  if (!auth) return { ok: false, errorType: 'MissingAuthenticationTokenException', message: 'Missing Authentication Token' };
  const m = AUTH_RE.exec(auth);
  if (!m) return { ok: false, errorType: 'IncompleteSignatureException', message: 'Authorization header requires Credential, SignedHeaders and Signature parameters.' };
  const [, credential, signedList, signature] = m as unknown as [string, string, string, string];
  const parts = credential.split('/');
  if (parts.length !== 5 || parts[4] !== 'aws4_request') return { ok: false, errorType: 'IncompleteSignatureException', message: 'Credential should be scoped to a valid region, service and date.' };
  const [accessKeyId, date, region, service] = parts as [string, string, string, string, string];
  const key = keys(accessKeyId);
  if (!key) return { ok: false, errorType: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.' };
  if (service !== expectService) return { ok: false, errorType: 'InvalidSignatureException', message: `Credential should be scoped to correct service: '${expectService}'.` };
  const amzDate = headerValue(req.headers, 'x-amz-date') ?? '';
  const at = parseAmzDate(amzDate);
  if (at === null || amzDate.slice(0, 8) !== date) return { ok: false, errorType: 'IncompleteSignatureException', message: 'x-amz-date is missing or does not match the credential scope date.' };
  if (Math.abs(now - at) > MAX_SKEW_MS) return { ok: false, errorType: 'InvalidSignatureException', message: 'Signature expired: the request time is too far from the server time.' };
  const signedHeaders = signedList.split(';');
  const sorted = [...signedHeaders].sort();
  if (signedHeaders.some((h, i) => h !== sorted[i] || h !== h.toLowerCase())) return { ok: false, errorType: 'IncompleteSignatureException', message: 'SignedHeaders must be lower-case and sorted.' };
  if (!signedHeaders.includes('host') || !signedHeaders.includes('x-amz-date')) return { ok: false, errorType: 'IncompleteSignatureException', message: 'host and x-amz-date must be signed.' };
  if (key.sessionToken !== undefined) {
    if (headerValue(req.headers, 'x-amz-security-token') !== key.sessionToken || !signedHeaders.includes('x-amz-security-token')) {
      return { ok: false, errorType: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.' };
    }
  }
  const scope = `${date}/${region}/${service}/aws4_request`;
  const expected = createHmac('sha256', signingKey(key.secretAccessKey, date, region, service)).update(stringToSign(amzDate, scope, canonicalRequest(req, signedHeaders)), 'utf8').digest();
  const given = Buffer.from(signature, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return { ok: false, errorType: 'InvalidSignatureException', message: 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.' };
  }
  return { ok: true, accessKeyId, region, service, signedHeaders };
}
