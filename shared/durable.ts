/**
 * Making what was written survive a crash of the machine: a file's bytes (written by this or
 * another process, through any descriptor), and the directory entries that name it.
 */
import { open, type FileHandle } from 'node:fs/promises';

/** fsync a file's data to its device. */
export async function syncFile(file: string): Promise<void> {
  const handle = await open(file, 'r');
  try {
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

/** fsync a directory so a file created or renamed in it survives a crash; best effort (not every FS allows it). */
export async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // EISDIR/EINVAL/EPERM on some filesystems: the rename itself already happened.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
