/**
 * What the schedule endpoints answer, as zod schemas: the API answers by them, the OpenAPI
 * document describes them, and the CLI client parses answers with them.
 */
import { z } from 'zod';
import { retentionSchema } from './definition.ts';

export const RUN_OUTCOMES = ['SUCCESS', 'FAILED', 'CANCELED', 'SKIPPED'] as const;
export type RunOutcome = (typeof RUN_OUTCOMES)[number];

export const runRecordSchema = z.object({
  /** The backup the run made (or would have made, when skipped). */
  id: z.string(),
  status: z.enum(RUN_OUTCOMES),
  /** When the run was due. */
  dueAt: z.string(),
  startedAt: z.string().optional(),
  completedAt: z.string().optional(),
  durationSeconds: z.number().optional(),
  error: z.string().optional(),
});
export type RunRecord = z.infer<typeof runRecordSchema>;

export const scheduleViewSchema = z.object({
  name: z.string(),
  cron: z.string().optional(),
  every: z.string().optional(),
  timezone: z.string(),
  backend: z.string(),
  include: z.array(z.string()).optional(),
  exclude: z.array(z.string()).optional(),
  config: z.record(z.string(), z.unknown()).optional(),
  idPrefix: z.string(),
  retention: retentionSchema.optional(),
  updatedAt: z.string(),
  /** When the next run is due; absent while none is planned. */
  nextRunAt: z.string().optional(),
  /** The backup id of the run going on. */
  running: z.string().optional(),
  lastRun: runRecordSchema.optional(),
  lastSuccess: runRecordSchema.optional(),
  /** The last run skipped because the one before still went on. */
  lastSkip: runRecordSchema.optional(),
  /** The schedule's backups its retention kept after the last successful run, newest first. */
  kept: z.array(z.string()).optional(),
  runs: z.object({ SUCCESS: z.int(), FAILED: z.int(), CANCELED: z.int(), SKIPPED: z.int() }),
});
export type ScheduleView = z.infer<typeof scheduleViewSchema>;

export const scheduleListSchema = z.object({ schedules: z.array(scheduleViewSchema) });

export const scheduleRunSchema = z.object({ schedule: z.string(), id: z.string(), dueAt: z.string() });
