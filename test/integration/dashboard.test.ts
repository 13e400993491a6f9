/**
 * The bull-board dashboard at /admin/queues: its auth in-process (Bearer, `?key=`, the login
 * form, the session cookie, 401 otherwise), and the real page in headless Chromium
 * (Debian's `chromium`, driven by playwright-core) listing every queue of the catalog.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SESSION_COOKIE, sessionToken, validSession } from '../../api/dashboard.ts';
import type { RedisServer } from '../../shared/redis-server.ts';
import { createTestApi, type TestApi } from '../support/api.ts';
import { startTestRedis } from '../support/redis.ts';
import { tempDir } from '../support/temp.ts';

const CHROMIUM = '/usr/bin/chromium';
const KEYS = 'dash-key-1,dash-key-2';
const NODES = 'alpha,beta,gamma';
// Every catalog queue, the scheduled runs' last: the dashboard shows the schedulers' next runs as delayed jobs.
const QUEUES = ['backups', 'restores', 'node-alpha', 'node-beta', 'node-gamma', 'schedules'];

let redis: RedisServer;
let secured: TestApi;

beforeAll(async () => {
  redis = await startTestRedis();
  secured = createTestApi(redis.url, {
    AUTHENTICATION_APIKEY_ENABLED: 'true',
    AUTHENTICATION_APIKEY_ALLOWED_KEYS: KEYS,
    CLUSTER_NODES: NODES,
    PORT: '0',
  });
});

afterAll(async () => {
  await secured?.api.stop();
  await secured?.close();
  await redis?.stop();
});

const get = (path: string, headers: Record<string, string> = {}) => secured.api.app.request(path, { headers });
const cookieOf = (res: Response) => /^shardvault_dashboard=([^;]+)/.exec(res.headers.get('set-cookie') ?? '')?.[1];

describe('dashboard auth (in-process)', () => {
  it('answers 401 without a key: the error envelope, or a login form for a browser', async () => {
    for (const path of ['/admin/queues', '/admin/queues/api/queues', '/admin/queues/static/favicon-32x32.png']) {
      const res = await get(path);
      expect(res.status, path).toBe(401);
      expect(await res.json()).toEqual({ error: [{ message: expect.stringContaining('/admin/queues?key=') }] });
    }
    const page = await get('/admin/queues', { accept: 'text/html,application/xhtml+xml' });
    expect(page.status).toBe(401);
    expect(await page.text()).toContain('<form method="post" action="/admin/queues/login">');
  });

  it('refuses a wrong key in every form', async () => {
    expect((await get('/admin/queues', { authorization: 'Bearer nope' })).status).toBe(401);
    expect((await get('/admin/queues?key=nope')).status).toBe(401);
    const form = await secured.api.app.request('/admin/queues/login', { method: 'POST', body: new URLSearchParams({ key: 'nope' }) });
    expect(form.status).toBe(401);
    expect(form.headers.get('set-cookie')).toBeNull();
    const forged = sessionToken('not-a-key', Math.floor(Date.now() / 1000) + 3600);
    expect((await get('/admin/queues/api/queues', { cookie: `${SESSION_COOKIE}=${forged}` })).status).toBe(401);
    const expired = sessionToken('dash-key-1', Math.floor(Date.now() / 1000) - 1);
    expect((await get('/admin/queues/api/queues', { cookie: `${SESSION_COOKIE}=${expired}` })).status).toBe(401);
  });

  it('accepts a Bearer key, and ?key= once, which leaves a session cookie', async () => {
    const bearer = await get('/admin/queues/api/queues', { authorization: 'Bearer dash-key-2' });
    expect(bearer.status).toBe(200);
    expect(((await bearer.json()) as { queues: { name: string }[] }).queues.map((q) => q.name)).toEqual(QUEUES);

    const login = await get('/admin/queues?key=dash-key-1');
    expect(login.status).toBe(303);
    expect(login.headers.get('location')).toBe('/admin/queues');
    const setCookie = login.headers.get('set-cookie')!;
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    expect(setCookie).toMatch(/Path=\/admin\/queues/);
    expect(setCookie).not.toContain('dash-key-1');
    const token = cookieOf(login)!;
    expect(validSession(token, ['dash-key-1'])).toBe(true);
    expect(validSession(token, ['dash-key-2'])).toBe(false);

    const page = await get('/admin/queues', { cookie: `${SESSION_COOKIE}=${token}` });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<base href="/admin/queues/"');
    const queues = await get('/admin/queues/api/queues', { cookie: `${SESSION_COOKIE}=${token}` });
    expect(queues.status).toBe(200);

    // The cookie opens the dashboard only, never the API, not even through a path under
    // /admin/queues that bull-board does not answer (Xapiand's PUT /{index}/{id} would).
    expect((await get('/v1/meta', { cookie: `${SESSION_COOKIE}=${token}` })).status).toBe(401);
    expect((await get('/metrics', { cookie: `${SESSION_COOKIE}=${token}` })).status).toBe(401);
    const put = await secured.api.app.request('/admin/queues', {
      method: 'PUT',
      headers: { cookie: `${SESSION_COOKIE}=${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ a: 1 }),
    });
    expect(put.status).toBe(404);
    expect(secured.store.getIndex('admin')).toBeUndefined();
  });

  it('keeps other query parameters when it strips the key, and takes the key from the login form', async () => {
    const login = await get('/admin/queues/queue/backups?status=failed&key=dash-key-2');
    expect(login.status).toBe(303);
    expect(login.headers.get('location')).toBe('/admin/queues/queue/backups?status=failed');
    const form = await secured.api.app.request('/admin/queues/login', { method: 'POST', body: new URLSearchParams({ key: 'dash-key-2' }) });
    expect(form.status).toBe(303);
    expect(form.headers.get('location')).toBe('/admin/queues');
    expect(validSession(cookieOf(form), ['dash-key-2'])).toBe(true);
  });

  it('shows a backup schedule as the next run waiting on the schedules queue', async () => {
    const auth = { authorization: 'Bearer dash-key-1' };
    const set = await secured.call('PUT', '/v1/backup-schedules/nightly', { cron: '30 2 * * *', timezone: 'Europe/Berlin', backend: 'filesystem' }, auth);
    expect(set.status).toBe(200);
    const { nextRunAt } = (await set.json()) as { nextRunAt: string };
    try {
      const res = await get('/admin/queues/api/queues?activeQueue=schedules&status=delayed&page=1&jobsPerPage=10', auth);
      expect(res.status).toBe(200);
      const { queues } = (await res.json()) as { queues: { name: string; counts: { delayed: number }; jobs: { name: string; data: { schedule: string }; timestamp: number; delay: number }[] }[] };
      const queue = queues.find((q) => q.name === 'schedules')!;
      expect(queue.counts.delayed).toBe(1);
      expect(queue.jobs).toHaveLength(1);
      const [next] = queue.jobs;
      expect(next).toMatchObject({ name: 'run-schedule', data: { schedule: 'nightly' } });
      expect(next!.timestamp + next!.delay).toBe(Date.parse(nextRunAt));
    } finally {
      expect((await secured.call('DELETE', '/v1/backup-schedules/nightly', undefined, auth)).status).toBe(204);
    }
  });

  it('is read-only: jobs are managed through the API', async () => {
    const res = await secured.api.app.request('/admin/queues/api/queues/backups/clean/completed', {
      method: 'PUT',
      headers: { authorization: 'Bearer dash-key-1' },
    });
    expect(res.status).toBeGreaterThanOrEqual(400);
  });

  it('is open when auth is off', async () => {
    const open = createTestApi(redis.url);
    try {
      expect((await open.api.app.request('/admin/queues')).status).toBe(200);
    } finally {
      await open.api.stop();
      await open.close();
    }
  });
});

const hasChromium = fs.existsSync(CHROMIUM);
const browserSuite = `dashboard in headless Chromium${hasChromium ? '' : ` (SKIPPED: ${CHROMIUM} is absent; apt-get install -y chromium)`}`;

if (!hasChromium) console.warn(`test/dashboard.test.ts: the browser test is SKIPPED: ${CHROMIUM} is absent (apt-get install -y chromium)`);

describe.skipIf(!hasChromium)(browserSuite, () => {
  it('signs in with the form and lists every queue; ?key= works the same', async () => {
    const { chromium } = await import('playwright-core');
    const { port } = await secured.api.start();
    const base = `http://127.0.0.1:${port}`;
    const profile = tempDir('shardvault-chromium-');
    const browser = await chromium.launchPersistentContext(profile.dir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    try {
      const page = await browser.newPage();
      const first = await page.goto(`${base}/admin/queues`);
      expect(first?.status()).toBe(401);
      await page.fill('input[name=key]', 'dash-key-1');
      await Promise.all([page.waitForURL(`${base}/admin/queues`), page.click('button[type=submit]')]);
      for (const queue of QUEUES) await page.getByText(queue, { exact: true }).first().waitFor({ timeout: 30_000 });
      expect(await page.title()).toBe('shardvault');

      // A second browser profile state: no cookie yet, the key in the address once.
      await browser.clearCookies();
      await page.goto(`${base}/admin/queues?key=dash-key-2`);
      expect(page.url()).toBe(`${base}/admin/queues`);
      for (const queue of QUEUES) await page.getByText(queue, { exact: true }).first().waitFor({ timeout: 30_000 });
    } finally {
      await browser.close();
      profile.cleanup();
    }
  });
});
