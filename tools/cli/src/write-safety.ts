/**
 * The one write rule of every `purify` command that writes files a user names
 * (issue #25: predictions written over held-out ground truth, a label map written
 * over the CT it came from, both with exit code 0). A command builds one
 * {@link OutputPolicy} from its inputs and `--overwrite`, and checks every output
 * path through it before it reads or computes anything:
 *
 * 1. Never inside a dataset's data folders: no path segment may be `imagesTr`,
 *    `imagesTs`, `labelsTr` or `labelsTs` (any folder of that name, in any case), and
 *    the folder may not be one that a `dataset.json` above it names for its images
 *    or labels (`training` / `validation` / `test` entries). `--overwrite` does not
 *    lift this.
 * 2. Never over an input file of the same command (compared after resolving
 *    symbolic links, and by inode for hard links). `--overwrite` does not lift this.
 * 3. Never two outputs of one command on the same path.
 * 4. Never replace an existing file without `--overwrite`.
 *
 * The writes themselves stay atomic (`writeFileAtomic` in @purify/artifacts:
 * temporary file + rename). Run folders that a command resumes by design (adapt,
 * benchmark, demo, the artifact store of train-source) get rule 1 only, through
 * {@link OutputPolicy.folder}; the files inside them are the command's own.
 */
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { CliError } from './cli-util';

/** Folders of an MSD / nnU-Net dataset that hold its images and labels. */
export const DATASET_DATA_FOLDERS = ['imagesTr', 'imagesTs', 'labelsTr', 'labelsTs'] as const;

export interface OutputPolicyOptions {
  /** Files the command reads (paths as given or absolute): never written over. */
  readonly inputs?: readonly { readonly path: string; readonly what: string }[];
  /** `--overwrite`: existing output files may be replaced (rules 1–3 still hold). */
  readonly overwrite?: boolean;
}

/**
 * `path` with every symbolic link of its existing part resolved: the real path of
 * the deepest existing ancestor plus the rest as written. Two spellings of one
 * file (`a/../b`, a symlinked folder) give the same string.
 */
export function canonicalPath(path: string): string {
  const abs = resolve(path);
  let existing = abs;
  const rest: string[] = [];
  while (!existsSync(existing)) {
    const parent = dirname(existing);
    if (parent === existing) break;
    rest.unshift(basename(existing));
    existing = parent;
  }
  let real = existing;
  try {
    real = realpathSync(existing);
  } catch {
    // Unreadable ancestor: compare as written.
  }
  return rest.length === 0 ? real : join(real, ...rest);
}

const isInside = (path: string, folder: string): boolean => {
  const rel = relative(folder, path);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
};

/** Image and label folders that `<root>/dataset.json` names in its case lists (empty if none or unreadable). */
function listedDataFolders(root: string): string[] {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(join(root, 'dataset.json'), 'utf8')) as Record<string, unknown>;
  } catch {
    return [];
  }
  const folders = new Set<string>();
  for (const key of ['training', 'validation', 'test']) {
    const list = json[key];
    if (!Array.isArray(list)) continue;
    for (const entry of list as unknown[]) {
      const paths = typeof entry === 'string' ? [entry] : entry !== null && typeof entry === 'object' ? Object.values(entry as Record<string, unknown>) : [];
      for (const p of paths) if (typeof p === 'string' && p !== '') folders.add(dirname(resolve(root, p)));
    }
  }
  // A list entry in the dataset root itself would make the whole dataset a "data folder"; the root stays writable.
  folders.delete(resolve(root));
  return [...folders];
}

/**
 * Why `folder` (absolute) is a dataset's image or label folder, or undefined.
 * Checks the folder's own path segments (as written and with links resolved) and
 * every `dataset.json` in the folder or above it.
 */
export function datasetFolderReason(folder: string): string | undefined {
  const abs = resolve(folder);
  const names = DATASET_DATA_FOLDERS.map((n) => n.toLowerCase());
  for (const candidate of new Set([abs, canonicalPath(abs)])) {
    const segment = candidate.split(sep).find((s) => names.includes(s.toLowerCase()));
    if (segment !== undefined) return `${candidate} is inside ${segment}/, a dataset's ${segment.toLowerCase().startsWith('labels') ? 'label' : 'image'} folder`;
  }
  for (let dir = abs; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'dataset.json'))) {
      const named = listedDataFolders(dir).find((f) => isInside(abs, f) || isInside(canonicalPath(abs), canonicalPath(f)));
      if (named !== undefined) return `${abs} is ${abs === named ? 'a folder' : `inside ${named}, a folder`} that ${join(dir, 'dataset.json')} lists images or labels in`;
    }
    if (dirname(dir) === dir) return undefined;
  }
}

interface FileId {
  readonly canonical: string;
  readonly inode: string | undefined;
}

function fileId(path: string): FileId {
  const canonical = canonicalPath(path);
  let inode: string | undefined;
  try {
    const st = statSync(canonical);
    if (st.isFile()) inode = `${st.dev}:${st.ino}`;
  } catch {
    inode = undefined;
  }
  return { canonical, inode };
}

/** The write rule (module comment) for one command invocation. */
export class OutputPolicy {
  private readonly inputs: { id: FileId; what: string }[];
  private readonly overwrite: boolean;
  private readonly claimed = new Map<string, string>();

  constructor(options: OutputPolicyOptions = {}) {
    this.inputs = (options.inputs ?? []).map((i) => ({ id: fileId(i.path), what: i.what }));
    this.overwrite = options.overwrite === true;
  }

  /** Rule 1 for a folder the command writes into (created later); returns it absolute. */
  folder(path: string, flag: string): string {
    const abs = resolve(path);
    const reason = datasetFolderReason(abs);
    if (reason !== undefined) {
      throw new CliError(`${flag}: ${reason}; purify never writes into a dataset's image or label folders (that is how ground truth gets replaced). Choose a folder outside the dataset.`, 2);
    }
    return abs;
  }

  /** Rules 1–4 for one output file; returns it absolute. */
  file(path: string, flag: string): string {
    const abs = resolve(path);
    this.folder(dirname(abs), flag);
    const id = fileId(abs);
    const input = this.inputs.find((i) => i.id.canonical === id.canonical || (i.id.inode !== undefined && i.id.inode === id.inode));
    if (input !== undefined) {
      throw new CliError(`${flag}: ${abs} is ${input.what}, an input of this command; purify never writes over its own input. Choose another path.`, 2);
    }
    const other = this.claimed.get(id.canonical);
    if (other !== undefined) throw new CliError(`${flag}: ${abs} is also the ${other} output; give each output its own path.`, 2);
    if (existsSync(abs)) {
      if (statSync(abs).isDirectory()) throw new CliError(`${flag}: ${abs} is a folder; expected a file name.`, 2);
      if (!this.overwrite) throw new CliError(`${flag}: ${abs} already exists; pass --overwrite to replace it.`, 2);
    }
    this.claimed.set(id.canonical, flag);
    return abs;
  }

  /**
   * Rules 1–4 for a folder of outputs whose names are decided later: `names` are the
   * entries the command writes, `pattern` matches the others (e.g. `slice-NNN.png`).
   * Any input among them is refused; existing ones are refused without
   * `--overwrite`. Returns the folder, absolute.
   */
  filesIn(dir: string, flag: string, outputs: { readonly names?: readonly string[]; readonly pattern?: RegExp }): string {
    const abs = this.folder(dir, flag);
    const names = new Set(outputs.names ?? []);
    const hit = (name: string): boolean => names.has(name) || (outputs.pattern?.test(name) ?? false);
    for (const input of this.inputs) {
      if (dirname(input.id.canonical) === canonicalPath(abs) && hit(basename(input.id.canonical))) {
        throw new CliError(`${flag}: ${abs} would get ${basename(input.id.canonical)}, which is ${input.what}, an input of this command; purify never writes over its own input. Choose another folder.`, 2);
      }
    }
    if (!this.overwrite && existsSync(abs) && statSync(abs).isDirectory()) {
      const existing = readdirSync(abs).filter(hit).sort();
      if (existing.length > 0) {
        throw new CliError(
          `${flag}: ${abs} already holds ${existing.slice(0, 3).join(', ')}${existing.length > 3 ? ` and ${existing.length - 3} more` : ''} from an earlier run; pass --overwrite to replace them, or choose another folder.`,
          2,
        );
      }
    }
    return abs;
  }
}
