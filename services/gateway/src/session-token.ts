import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const SESSION_ID = /^[A-Za-z0-9_-]{22}$/;

/** Session ids are 128-bit random; tokens are HMACs of them under the gateways' shared secret. */
export class SessionTokens {
  constructor(private readonly secret: string) {}

  private pool = Buffer.alloc(0);
  private offset = 0;

  /** 16 random bytes, cut from a pool drawn in bulk (one draw per 256 sessions). */
  newSessionId(): string {
    if (this.offset + 16 > this.pool.length) {
      this.pool = randomBytes(16 * 256);
      this.offset = 0;
    }
    this.offset += 16;
    return this.pool.toString('base64url', this.offset - 16, this.offset);
  }

  sign(sessionId: string): string {
    return createHmac('sha256', this.secret)
      .update(`chorus.session.v1:${sessionId}`)
      .digest('base64url');
  }

  /** True only for a well-formed session id with the token we would have issued for it. */
  verify(sessionId: string, token: string): boolean {
    if (!SESSION_ID.test(sessionId)) return false;
    const expected = Buffer.from(this.sign(sessionId));
    const given = Buffer.from(token);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}
