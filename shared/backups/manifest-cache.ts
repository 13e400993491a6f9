/**
 * Finished backups' global manifests, kept briefly in this process, so that a list of a
 * thousand backups, polled all day, reads only the manifests it has not seen lately, and a
 * status poll of a finished backup does not read its manifest every time.
 *
 * A finished manifest never changes; it only disappears when its backup is deleted. This
 * process forgets a manifest when it deletes the backup; a delete made by another process is
 * marked in Redis (OperationStore.forget), which the status of a backup Redis no longer knows
 * checks before it answers from here, and the list sees it in the backend's listing. Entries
 * expire after TTL_MS to twice that (entries read together expire apart, so a large list
 * re-reads a few manifests per request instead of all of them at once). Concurrent
 * requests that miss the same manifest share one read. Only the list and status endpoints read
 * through the cache: create, restore, verify and delete always read the backend.
 */
import { isTerminal } from './contract.ts';
import { InFlight } from './in-flight.ts';
import type { GlobalManifest } from './manifest.ts';

/** How long a manifest is answered from memory, at least (at most twice this). */
export const TTL_MS = 30_000;
/** At most this many manifests are kept (the oldest entry goes first). */
const MAX_ENTRIES = 20_000;

export class ManifestCache {
  private readonly entries = new Map<string, { manifest: GlobalManifest; until: number }>();
  private readonly loading = new InFlight<string, GlobalManifest | undefined>();

  /**
   * The manifest at `where` (the backend's locate of its key) from memory, or else from `load`,
   * one load at a time per manifest.
   */
  read(where: string, load: () => Promise<GlobalManifest | undefined>): Promise<GlobalManifest | undefined> {
    const known = this.get(where);
    if (known) return Promise.resolve(known);
    return this.loading.run(where, load);
  }

  private get(where: string): GlobalManifest | undefined {
    const entry = this.entries.get(where);
    if (!entry) return undefined;
    if (entry.until > Date.now()) return entry.manifest;
    this.entries.delete(where);
    return undefined;
  }

  /** Keep a manifest; one of an operation that is not finished is never kept. */
  set(where: string, manifest: GlobalManifest): void {
    if (!isTerminal(manifest.status)) return;
    this.entries.delete(where);
    if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(where, { manifest, until: Date.now() + TTL_MS * (1 + Math.random()) });
  }

  forget(where: string): void {
    this.entries.delete(where);
  }
}
