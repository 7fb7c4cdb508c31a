import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/**
 * Who may see the dashboard. The cluster token itself never leaves the coordinator: the page is
 * opened with a separate key, HMAC-SHA256(token, DASHBOARD_KEY_LABEL), printed in a login link at
 * start. The first visit trades the key in the URL for an HttpOnly cookie and redirects to a
 * clean URL; /metrics also takes the key as a Bearer token (Prometheus' `authorization`). The
 * key opens the dashboard only: it cannot join the cluster, and the token cannot be recovered
 * from it.
 */
export const DASHBOARD_KEY_LABEL = 'trainer-dashboard-v1';
export const DASHBOARD_COOKIE = 'trainer_dashboard';

export function deriveDashboardKey(token: string): string {
  return createHmac('sha256', token).update(DASHBOARD_KEY_LABEL).digest('base64url');
}

/** Constant-time comparison of a presented key with the expected one. */
export function keyMatches(presented: string | undefined, key: string): boolean {
  if (!presented) return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(key);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function cookieValue(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

export function bearerToken(req: IncomingMessage): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  return m ? m[1] : undefined;
}

/** The request carries the key, as the session cookie or as a Bearer token. */
export function isAuthorized(req: IncomingMessage, key: string): boolean {
  return keyMatches(cookieValue(req, DASHBOARD_COOKIE), key) || keyMatches(bearerToken(req), key);
}

export function sessionCookie(key: string): string {
  return `${DASHBOARD_COOKIE}=${key}; HttpOnly; SameSite=Strict; Path=/`;
}
