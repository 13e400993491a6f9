/**
 * A scratch table on disk: binary keys → unsigned 32-bit numbers in an LMDB environment of its
 * own, for a table too large to hold in a process's memory (a repository's chunk table past its
 * memory budget, shared/repository/chunk-table.ts). Its pages are the file's, mapped (the
 * kernel's page cache, which it can write out and drop), not the process's own memory.
 *
 * The environment is made in a new directory under the system's temporary directory, which is
 * removed as soon as it is open: the process keeps the open files, nothing else can reach them,
 * and whatever way the process ends — killed included — nothing is left on the disk. Nothing is
 * synced: what the table holds is rebuilt by whoever made it when a process starts.
 */
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { open, type RootDatabase } from 'lmdb';

export class ScratchTable {
  private readonly db: RootDatabase<Buffer, Buffer>;
  private readonly value = Buffer.alloc(4);

  constructor() {
    const dir = fs.mkdtempSync(path.join(tmpdir(), 'shardvault-scratch-'));
    try {
      this.db = open<Buffer, Buffer>({ path: dir, keyEncoding: 'binary', encoding: 'binary', noSync: true, useWritemap: true, cache: false });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  get(key: Buffer): number | undefined {
    return this.db.getBinaryFast(key)?.readUInt32LE(0);
  }

  /** Within `batch` only: puts outside one would each be a transaction of their own. */
  put(key: Buffer, value: number): void {
    this.value.writeUInt32LE(value);
    this.db.putSync(key, this.value);
  }

  /** Run `puts` as one write transaction. */
  batch(puts: () => void): void {
    this.db.transactionSync(puts);
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
