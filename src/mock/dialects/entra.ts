import { URL } from 'node:url';
import { header, sendJson, type Ctx } from '../engine.ts';
import type { MockDialect } from './index.ts';

/**
 * Loopback Microsoft Entra ID endpoints, so Azure backends with `managedIdentity` or `entra` auth get real
 * tokens in tests and the demo without leaving the machine:
 * - the App Service managed-identity endpoint (`IDENTITY_ENDPOINT=<mock>/msi/token`, `IDENTITY_HEADER`),
 *   `GET /msi/token?api-version=2019-08-01&resource=…[&client_id=…]`, the secret in `X-IDENTITY-HEADER`;
 * - the client-credentials token endpoint `POST /{tenant}/oauth2/v2.0/token` and the discovery document
 *   `GET /{tenant}/v2.0/.well-known/openid-configuration` MSAL reads first.
 * Tokens are random opaque strings recorded in ctx.identity, checked on the mock's Azure paths.
 */
const TENANT_TOKEN = /^\/([A-Za-z0-9.-]{1,128})\/oauth2\/v2\.0\/token$/;
const TENANT_DISCOVERY = /^\/([A-Za-z0-9.-]{1,128})\/v2\.0\/\.well-known\/openid-configuration$/;

export const entraDialect: MockDialect = {
  name: 'entra',
  matches(method, path) {
    return (method === 'GET' && (path === '/msi/token' || TENANT_DISCOVERY.test(path))) || (method === 'POST' && TENANT_TOKEN.test(path));
  },
  handle(ctx, raw, path) {
    const url = new URL(ctx.req.url ?? '/', 'http://mock');
    if (path === '/msi/token') return managedIdentity(ctx, url);
    const discovery = TENANT_DISCOVERY.exec(path);
    if (discovery) return openidConfiguration(ctx, discovery[1]!);
    return clientCredentials(ctx, raw);
  },
};

function ttl(ctx: Ctx): number {
  return ctx.opts.tokenTtlSeconds ?? 3600;
}

function managedIdentity(ctx: Ctx, url: URL): void {
  const expected = ctx.opts.identityHeader ?? 'sluice-mock-identity';
  if (header(ctx.req, 'x-identity-header') !== expected) {
    return sendJson(ctx, 401, { statusCode: 401, message: 'Unauthorized: X-IDENTITY-HEADER is missing or wrong.' });
  }
  const resource = url.searchParams.get('resource');
  if (url.searchParams.get('api-version') !== '2019-08-01' || !resource) {
    return sendJson(ctx, 400, { statusCode: 400, message: 'api-version=2019-08-01 and resource are required.' });
  }
  const clientId = url.searchParams.get('client_id');
  if (clientId !== null && ctx.opts.identityRefusedClientIds?.includes(clientId)) {
    return sendJson(ctx, 400, { statusCode: 400, message: 'No managed identity with this client id is assigned to the resource.' });
  }
  const { token, expiresAt } = ctx.identity.issue(ttl(ctx), 'mock-entra-mi');
  sendJson(ctx, 200, {
    access_token: token,
    expires_on: String(Math.floor(expiresAt / 1000)),
    resource,
    token_type: 'Bearer',
    client_id: clientId ?? 'system-assigned',
  });
}

function openidConfiguration(ctx: Ctx, tenant: string): void {
  const host = header(ctx.req, 'host') ?? '127.0.0.1';
  const base = `${(ctx.req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http'}://${host}/${tenant}`;
  sendJson(ctx, 200, {
    token_endpoint: `${base}/oauth2/v2.0/token`,
    authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
    issuer: `${base}/v2.0`,
    jwks_uri: `${base}/discovery/v2.0/keys`,
    end_session_endpoint: `${base}/oauth2/v2.0/logout`,
    response_types_supported: ['code', 'id_token', 'token'],
    token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
  });
}

function clientCredentials(ctx: Ctx, raw: Buffer): void {
  const form = new URLSearchParams(raw.toString('utf8'));
  const id = form.get('client_id');
  const secret = form.get('client_secret');
  const want = ctx.opts.entraClient;
  const ok = form.get('grant_type') === 'client_credentials' && id && secret && (!want || (want.clientId === id && want.clientSecret === secret));
  if (!ok) {
    return sendJson(ctx, 401, { error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.', error_codes: [7000215] });
  }
  const { token } = ctx.identity.issue(ttl(ctx), 'mock-entra-sp');
  sendJson(ctx, 200, { token_type: 'Bearer', expires_in: ttl(ctx), ext_expires_in: ttl(ctx), access_token: token });
}
