import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Writes a folder so readers see the old folder or the complete new one, never a
 * partial one: every file goes (flushed) into a temporary sibling folder, which
 * is then renamed onto `dir`. Replacing an existing folder takes two renames
 * (old → `.<name>.old-<random>`, new → `dir`, then the old one is deleted); a
 * crash between them leaves `dir` absent and the previous version in the `.old`
 * folder. Local helper: `@purify/artifacts`' `writeFileAtomic` works per file.
 * @param files file name (no sub-folders) → bytes, written in the given order.
 */
export async function writeFolderAtomic(dir: string, files: ReadonlyArray<readonly [string, Uint8Array]>): Promise<void> {
  const parent = dirname(dir);
  await mkdir(parent, { recursive: true });
  const tmp = join(parent, `.${basename(dir)}.tmp-${randomBytes(6).toString('hex')}`);
  await mkdir(tmp);
  try {
    for (const [name, bytes] of files) {
      if (name.includes('/') || name.includes('\\') || name.startsWith('.')) throw new Error(`writeFolderAtomic: bad file name '${name}'`);
      const fh = await open(join(tmp, name), 'wx', 0o644);
      try {
        await fh.writeFile(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    await syncDir(tmp);
    const existing = await stat(dir).catch(() => undefined);
    if (existing === undefined) {
      await rename(tmp, dir);
    } else {
      const old = join(parent, `.${basename(dir)}.old-${randomBytes(6).toString('hex')}`);
      await rename(dir, old);
      await rename(tmp, dir);
      await rm(old, { recursive: true, force: true });
    }
    await syncDir(parent);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // Not every platform can fsync a folder; the rename is still atomic.
  }
}
