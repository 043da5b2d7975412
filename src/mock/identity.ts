import { randomBytes } from 'node:crypto';

/**
 * The bearer tokens one mock server has issued from its loopback identity endpoints (dialects/entra.ts),
 * so its Azure paths can check that a bearer is one it issued and still valid, and tests can count how
 * often the gateway fetched a token. Bounded: the oldest tokens are forgotten past `max`.
 */
export class MockIdentity {
  private readonly issued = new Map<string, number>();
  /** Tokens handed out since start. */
  tokensIssued = 0;

  constructor(private readonly max = 10_000) {}

  issue(ttlSeconds: number, prefix: string, now = Date.now()): { token: string; expiresAt: number } {
    const token = `${prefix}.${randomBytes(18).toString('base64url')}`;
    const expiresAt = now + ttlSeconds * 1000;
    this.issued.set(token, expiresAt);
    this.tokensIssued++;
    if (this.issued.size > this.max) this.issued.delete(this.issued.keys().next().value!);
    return { token, expiresAt };
  }

  /** 'valid', 'expired' or 'unknown'. */
  check(token: string, now = Date.now()): 'valid' | 'expired' | 'unknown' {
    const exp = this.issued.get(token);
    if (exp === undefined) return 'unknown';
    return exp > now ? 'valid' : 'expired';
  }
}
