/**
 * Weaviate's backup endpoints, thin over shared/backups/service.ts:
 *
 *   POST   /v1/backups/{backend}                {id, include?, exclude?, config?} → BackupCreateResponse
 *   GET    /v1/backups/{backend}                → BackupListResponse (newest first; ?order=asc; ?limit=&after=: a page, in id order)
 *   GET    /v1/backups/{backend}/{id}           → BackupCreateStatusResponse (+ classes, progress)
 *   DELETE /v1/backups/{backend}/{id}           cancel a running backup → 204
 *   POST   /v1/backups/{backend}/{id}/restore   {include?, exclude?, node_mapping?, config?} → BackupRestoreResponse
 *   GET    /v1/backups/{backend}/{id}/restore   → BackupRestoreStatusResponse (+ classes, progress)
 *   DELETE /v1/backups/{backend}/{id}/restore   cancel a running restore → 204
 *   GET    /v1/backups/{backend}/{id}/verify    check every object against the manifests, without restoring
 *                                               → {id, backend, status: OK|CORRUPT, objects, bytes, problems: [{key, problem}]}
 *   POST   /v1/backups/{backend}/{id}/delete    remove a finished backup, then collect unused chunks
 *                                               → {id, backend, deleted, collected} (DELETE …/{id} stays Weaviate's cancel)
 *
 * Status, list and cancel accept Weaviate's `?bucket=&path=` query overrides.
 */
import { Hono } from 'hono';
import { createBackupService, type BackupService } from '../../shared/backups/service.ts';
import { checkOverrides, QUERY_NAMES } from '../../shared/backends/index.ts';
import { listPageFromQuery, overridesFromQuery } from '../../shared/backups/validate.ts';
import { ValidationError } from '../../shared/errors.ts';
import { readJson } from '../body.ts';
import type { ApiDeps } from '../deps.ts';
import { reply } from '../reply.ts';
import { requireRedis } from '../require-redis.ts';

export interface BackupRoutes {
  app: Hono;
  /** Closes the service if these routes created it. */
  close(): Promise<void>;
}

export function backupRoutes(deps: ApiDeps): BackupRoutes {
  const { config } = deps;
  let created: BackupService | undefined;
  // Created on first use, so an API that never sees a backup call opens no queues.
  const service = (): BackupService => (deps.backups ??= created = createBackupService({ ...deps, catalog: deps.data }));
  const app = new Hono();
  // The service's queues would wait for an absent Redis without bound: answer 503 instead.
  app.use('*', requireRedis(deps.redis));
  // Checked here so that an error names the query parameter, not the body's config.Bucket/Path.
  const query = (c: { req: { param(k: 'backend'): string; query(k: string): string | undefined } }) => {
    const overrides = overridesFromQuery({ bucket: c.req.query('bucket'), path: c.req.query('path') });
    checkOverrides(c.req.param('backend'), overrides, QUERY_NAMES);
    return overrides;
  };

  app.post('/:backend', async (c) => reply(c, await service().create(c.req.param('backend'), await readJson(c, config.maxBodyBytes))));
  app.get('/:backend', async (c) =>
    reply(c, await service().list(c.req.param('backend'), query(c), listPageFromQuery({ limit: c.req.query('limit'), after: c.req.query('after'), order: c.req.query('order') }))),
  );
  app.get('/:backend/:id', async (c) => reply(c, await service().status(c.req.param('backend'), c.req.param('id'), query(c))));
  app.delete('/:backend/:id', async (c) => {
    await service().cancel(c.req.param('backend'), c.req.param('id'), query(c));
    return c.body(null, 204);
  });
  app.post('/:backend/:id/restore', async (c) =>
    reply(c, await service().restore(c.req.param('backend'), c.req.param('id'), await readJson(c, config.maxBodyBytes))),
  );
  app.get('/:backend/:id/restore', async (c) => reply(c, await service().restoreStatus(c.req.param('backend'), c.req.param('id'))));
  app.delete('/:backend/:id/restore', async (c) => {
    await service().cancelRestore(c.req.param('backend'), c.req.param('id'));
    return c.body(null, 204);
  });
  app.post('/:backend/:id/delete', async (c) => {
    // No body is needed; one that is sent is read like any other (size, type, JSON) and must be empty or {}.
    const body = await readJson(c, config.maxBodyBytes);
    if (body !== undefined && !(typeof body === 'object' && body !== null && !Array.isArray(body) && Object.keys(body).length === 0)) {
      throw new ValidationError('POST …/delete takes no body (or an empty JSON object)');
    }
    return reply(c, await service().deleteBackup(c.req.param('backend'), c.req.param('id'), query(c)));
  });
  app.get('/:backend/:id/verify', async (c) => reply(c, await service().verify(c.req.param('backend'), c.req.param('id'), query(c))));

  return {
    app,
    close: async () => {
      await created?.close();
    },
  };
}
