/**
 * bull-board at `/admin/queues`: every queue of the job catalog (`backups`, `restores`,
 * `node-<name>` for each node of CLUSTER_NODES) under the catalog's `{shardvault}` prefix.
 * Read-only: backups and restores are started and cancelled through the API, which keeps
 * their state in step with their jobs; retrying or removing a job by hand would not.
 *
 * With auth on (AUTHENTICATION_APIKEY_ENABLED), a browser cannot add an Authorization header
 * to a page it navigates to, so the dashboard accepts any of:
 * - `Authorization: Bearer <key>` (curl, or a reverse proxy that injects it);
 * - `GET /admin/queues?key=<key>` once: answers a session cookie and redirects to the same
 *   page without the key in its address;
 * - the form of the 401 page, which posts the key to `/admin/queues/login` (keeps the key out
 *   of the browser's history).
 * The cookie (`shardvault_dashboard`) never holds the key: it is `v1.<expiry>.<HMAC-SHA256 of
 * the expiry under the key>`, valid SESSION_HOURS, HttpOnly, SameSite=Strict, limited to
 * /admin/queues, Secure over https; removing a key from the allowed list ends its sessions.
 * Everything else under /admin/queues answers 401 without one of them.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { errorHandler as boardErrorHandler } from '@bull-board/api/dist/handlers/error.js';
import { HonoAdapter } from '@bull-board/hono';
import { serveStatic } from '@hono/node-server/serve-static';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import { html } from 'hono/html';
import type { Redis } from 'ioredis';
import type { QueueSet } from '../shared/jobs/queues.ts';
import { isRedisUnavailable } from '../shared/redis.ts';
import { matchesSecret } from '../shared/secret.ts';
import { errorBody } from './errors.ts';
import { requireRedis } from './require-redis.ts';

const DASHBOARD_PATH = '/admin/queues';
export const SESSION_COOKIE = 'shardvault_dashboard';
const SESSION_HOURS = 12;

/** Whether a request path belongs to the dashboard (which does its own auth). */
export function isDashboardPath(path: string): boolean {
  return path === DASHBOARD_PATH || path.startsWith(`${DASHBOARD_PATH}/`);
}

const sign = (key: string, expires: number) => createHmac('sha256', key).update(`shardvault-dashboard.${expires}`).digest('base64url');

/** A session token for `key`, valid until `expires` (epoch seconds). */
export function sessionToken(key: string, expires: number): string {
  return `v1.${expires}.${sign(key, expires)}`;
}

/** Whether a session token was made with one of `keys` and has not expired. */
export function validSession(token: string | undefined, keys: readonly string[], now = Date.now()): boolean {
  const m = /^v1\.(\d{1,12})\.([\w-]{43})$/.exec(token ?? '');
  if (!m) return false;
  const expires = Number(m[1]);
  if (expires * 1000 <= now) return false;
  const given = Buffer.from(m[2]!);
  return keys.some((k) => {
    const expected = Buffer.from(sign(k, expires));
    return expected.length === given.length && timingSafeEqual(expected, given);
  });
}

function startSession(c: Context, key: string): void {
  const expires = Math.floor(Date.now() / 1000) + SESSION_HOURS * 3600;
  const https = new URL(c.req.url).protocol === 'https:' || c.req.header('x-forwarded-proto') === 'https';
  setCookie(c, SESSION_COOKIE, sessionToken(key, expires), {
    path: DASHBOARD_PATH,
    httpOnly: true,
    sameSite: 'Strict',
    secure: https,
    maxAge: SESSION_HOURS * 3600,
  });
}

function loginPage(message: string) {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shardvault queues: sign in</title>
<style>body{font:16px system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}input{font:inherit;width:100%;margin:.5rem 0;padding:.4rem}</style></head>
<body><h1>shardvault queues</h1><p>${message}</p>
<form method="post" action="${DASHBOARD_PATH}/login"><label>API key <input type="password" name="key" autocomplete="current-password" required></label>
<button type="submit">Open the dashboard</button></form></body></html>`;
}

/** 401, as the login form for a browser and as the error envelope for anything else. */
function refuse(c: Context, message: string): Response | Promise<Response> {
  if ((c.req.header('accept') ?? '').includes('text/html')) return c.html(loginPage(message), 401);
  return c.json(errorBody(`${message}: send Authorization: Bearer <key>, or open ${DASHBOARD_PATH}?key=<key> once`), 401);
}

/** The dashboard's own auth (see the top of this file). */
function dashboardAuth(keys: readonly string[]): MiddlewareHandler {
  return async (c, next) => {
    const bearer = /^Bearer\s+(.+)$/i.exec(c.req.header('authorization') ?? '')?.[1]?.trim();
    if (bearer !== undefined) return matchesSecret(bearer, [...keys]) ? next() : refuse(c, 'invalid API key');
    if (c.req.method === 'POST' && c.req.path === `${DASHBOARD_PATH}/login`) {
      const form = await c.req.parseBody().catch(() => ({}) as Record<string, unknown>);
      const key = typeof form.key === 'string' ? form.key : '';
      if (!matchesSecret(key, [...keys])) return refuse(c, 'invalid API key');
      startSession(c, key);
      return c.redirect(DASHBOARD_PATH, 303);
    }
    const url = new URL(c.req.url);
    const key = url.searchParams.get('key');
    if (key !== null && c.req.method === 'GET') {
      if (!matchesSecret(key, [...keys])) return refuse(c, 'invalid API key');
      startSession(c, key);
      url.searchParams.delete('key');
      return c.redirect(`${url.pathname}${url.search}`, 303);
    }
    if (validSession(getCookie(c, SESSION_COOKIE), keys)) return next();
    return refuse(c, 'the queue dashboard needs an API key');
  };
}

/**
 * The dashboard as a Hono app to mount at `/` (its routes carry the full /admin/queues path).
 * The queues are opened on its first request.
 */
export function dashboardRoutes(deps: { queues: QueueSet; auth: { enabled: boolean; keys: string[] }; redis?: Redis }): Hono {
  const adapter = new HonoAdapter(serveStatic).setBasePath(DASHBOARD_PATH);
  const board = createBullBoard({
    queues: [],
    serverAdapter: adapter,
    options: { uiConfig: { boardTitle: 'shardvault', hideDocsLink: true } },
  });
  // bull-board answers every failure 500; Redis being away is a 503 (retry later).
  adapter.setErrorHandler((err) =>
    boardErrorHandler(isRedisUnavailable(err) ? Object.assign(new Error('Redis is unavailable; retry later'), { statusCode: 503 }) : err),
  );
  let attached = false;
  const attach: MiddlewareHandler = async (_c, next) => {
    if (!attached) {
      attached = true;
      board.replaceQueues(deps.queues.queues.map((q) => new BullMQAdapter(q, { readOnlyMode: true })));
    }
    return next();
  };
  const app = new Hono();
  if (deps.auth.enabled) app.use(`${DASHBOARD_PATH}/*`, dashboardAuth(deps.auth.keys)).use(DASHBOARD_PATH, dashboardAuth(deps.auth.keys));
  // Its queues would wait for an absent Redis without bound: its JSON API answers 503 instead.
  if (deps.redis) app.use(`${DASHBOARD_PATH}/api/*`, requireRedis(deps.redis));
  app.use(`${DASHBOARD_PATH}/*`, attach).use(DASHBOARD_PATH, attach);
  app.route(DASHBOARD_PATH, adapter.registerPlugin());
  // Nothing under /admin/queues falls through to the API's routes (which the dashboard's
  // cookie must never open): what bull-board does not answer is not found.
  const notFound = (c: Context) => c.json(errorBody(`no route for ${c.req.method} ${c.req.path}`), 404);
  app.all(`${DASHBOARD_PATH}/*`, notFound).all(DASHBOARD_PATH, notFound);
  return app;
}
