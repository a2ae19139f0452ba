/**
 * Just enough of Dockerfile and .dockerignore syntax to check our images
 * without a Docker engine: instructions with `\` continuations, comments,
 * stages (`FROM … AS name`), JSON (exec) and shell forms.
 */

export interface Instruction {
  /** Upper-case keyword: FROM, COPY, RUN … */
  readonly keyword: string;
  /** Everything after the keyword, continuations joined. */
  readonly args: string;
  /** `--name=value` flags at the start of the arguments (COPY --from, RUN --mount …). */
  readonly flags: Readonly<Record<string, string>>;
  /** Arguments after the flags: the JSON array for exec form, else split on whitespace. */
  readonly words: readonly string[];
  /** 1-based line of the keyword. */
  readonly line: number;
}

export interface Stage {
  readonly image: string;
  readonly name: string | undefined;
  readonly instructions: readonly Instruction[];
}

function splitWords(rest: string): string[] {
  const trimmed = rest.trim();
  if (trimmed.startsWith('[')) {
    try {
      const parsed = JSON.parse(trimmed) as unknown;
      if (Array.isArray(parsed) && parsed.every((w) => typeof w === 'string')) return parsed;
    } catch {
      // shell form after all
    }
  }
  return trimmed === '' ? [] : trimmed.split(/\s+/);
}

export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i] as string;
    if (/^\s*(#|$)/.test(first)) continue;
    const line = i + 1;
    let joined = first;
    while (/\\\s*$/.test(joined) && i + 1 < lines.length) {
      joined = joined.replace(/\\\s*$/, ' ');
      i++;
      const next = lines[i] as string;
      if (!/^\s*#/.test(next)) joined += next;
    }
    const m = /^\s*([A-Za-z]+)\s*(.*)$/.exec(joined);
    if (!m) throw new Error(`Dockerfile line ${line}: cannot parse ${JSON.stringify(first)}`);
    const keyword = (m[1] as string).toUpperCase();
    let args = (m[2] as string).trim();
    // HEALTHCHECK options come before CMD; keep them as flags too.
    const flags: Record<string, string> = {};
    for (let f = /^--([a-z-]+)=(\S+)\s*/.exec(args); f; f = /^--([a-z-]+)=(\S+)\s*/.exec(args)) {
      flags[f[1] as string] = f[2] as string;
      args = args.slice(f[0].length);
    }
    out.push({ keyword, args: (m[2] as string).trim(), flags, words: splitWords(keyword === 'HEALTHCHECK' ? args.replace(/^CMD\s+/, '') : args), line });
  }
  return out;
}

/** Groups instructions by `FROM`. */
export function stagesOf(instructions: readonly Instruction[]): Stage[] {
  const stages: { image: string; name: string | undefined; instructions: Instruction[] }[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const [image, as, name] = ins.words;
      stages.push({ image: image ?? '', name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else {
      stages[stages.length - 1]?.instructions.push(ins);
    }
  }
  return stages;
}

function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*' && pattern[i + 1] === '*') {
      // `**/` = any number of directories (including none)
      re += pattern[i + 2] === '/' ? '(?:.*/)?' : '.*';
      i += pattern[i + 2] === '/' ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  // A pattern that names a directory excludes everything under it.
  return new RegExp(`^${re}(?:/.*)?$`);
}

/**
 * A predicate telling whether `path` (relative to the build context, `/`
 * separators) is excluded by the .dockerignore `text` (last matching rule
 * wins; `!pattern` re-includes).
 */
export function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = (negate ? l.slice(1) : l).replace(/^\/+/, '').replace(/\/+$/, '');
      return { negate, re: globToRegExp(pattern) };
    });
  return (path: string) => {
    let excluded = false;
    for (const rule of rules) if (rule.re.test(path)) excluded = !rule.negate;
    return excluded;
  };
}
