import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * Configuration from flags and environment, validated once at start.
 *
 * A schema maps camelCase keys to options; key `maxReceiveMessageBytes` is set by
 * `--max-receive-message-bytes VALUE` (or `=VALUE`) or by the environment variable
 * `<PREFIX>_MAX_RECEIVE_MESSAGE_BYTES`. Flags win over the environment, which wins
 * over the default. Every failure is a {@link ConfigError} whose message is one
 * line naming the setting, where the value came from, what was expected and what
 * was received.
 */

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Thrown by {@link loadConfig} when `--help` is given; `message` is the help text. */
export class HelpRequested extends Error {
  override readonly name = 'HelpRequested';
}

export interface Option<T> {
  readonly help: string;
  /** undefined = required. */
  readonly default: T | undefined;
  /** A word for the help text, e.g. "PORT". */
  readonly metavar: string;
  /** Boolean options may be given as a bare flag. */
  readonly isFlag?: boolean;
  /** Absent stays undefined instead of being an error. */
  readonly optional?: boolean;
  /** Parses and validates a raw string; throws Error("must be …") when invalid. */
  parse(raw: string): T;
}

export type Schema = Record<string, Option<unknown>>;
export type ConfigOf<S extends Schema> = { readonly [K in keyof S]: S[K] extends Option<infer T> ? T : never };

function option<T>(metavar: string, help: string, fallback: T | undefined, parse: (raw: string) => T): Option<T> {
  return { metavar, help, default: fallback, parse };
}

function parseInteger(raw: string, min: number, max: number): number {
  const n = /^-?\d+$/.test(raw.trim()) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new Error(`must be an integer in [${min}, ${max}]`);
  }
  return n;
}

/** Option builders. */
export const opt = {
  int(help: string, fallback: number | undefined, range: { min?: number; max?: number } = {}): Option<number> {
    const min = range.min ?? Number.MIN_SAFE_INTEGER;
    const max = range.max ?? Number.MAX_SAFE_INTEGER;
    return option('N', help, fallback, (raw) => parseInteger(raw, min, max));
  },

  /** A TCP port; 0 asks the OS for a free one. */
  port(help: string, fallback: number | undefined): Option<number> {
    return option('PORT', help, fallback, (raw) => parseInteger(raw, 0, 65535));
  },

  number(help: string, fallback: number | undefined, range: { min?: number; max?: number } = {}): Option<number> {
    return option('X', help, fallback, (raw) => {
      const n = raw.trim() === '' ? Number.NaN : Number(raw);
      const min = range.min ?? -Infinity;
      const max = range.max ?? Infinity;
      if (!Number.isFinite(n) || n < min || n > max) throw new Error(`must be a number in [${min}, ${max}]`);
      return n;
    });
  },

  string(help: string, fallback: string | undefined): Option<string> {
    return option('TEXT', help, fallback, (raw) => {
      if (raw === '') throw new Error('must not be empty');
      return raw;
    });
  },

  bool(help: string, fallback: boolean): Option<boolean> {
    return {
      ...option('BOOL', help, fallback, (raw) => {
        const v = raw.trim().toLowerCase();
        if (['1', 'true', 'yes', 'on'].includes(v)) return true;
        if (['0', 'false', 'no', 'off'].includes(v)) return false;
        throw new Error('must be one of true/false/1/0/yes/no/on/off');
      }),
      isFlag: true,
    };
  },

  oneOf<const V extends string>(help: string, values: readonly V[], fallback: V | undefined): Option<V> {
    return option(values.join('|'), help, fallback, (raw) => {
      if (!(values as readonly string[]).includes(raw)) throw new Error(`must be one of ${values.join(', ')}`);
      return raw as V;
    });
  },

  /** `host:port` (IPv6 as `[::1]:port`). */
  address(help: string, fallback: string | undefined): Option<string> {
    return option('HOST:PORT', help, fallback, parseAddress);
  },

  /** Comma-separated `host:port` list (replicas to balance over). */
  addresses(help: string, fallback: string[] | undefined): Option<string[]> {
    return option('HOST:PORT[,…]', help, fallback, (raw) => {
      const parts = raw.split(',').map((s) => s.trim());
      if (parts.some((p) => p === '')) throw new Error('must be a comma-separated list of host:port');
      return parts.map(parseAddress);
    });
  },

  /**
   * A directory. `mode: 'read'` requires an existing readable directory;
   * `mode: 'write'` creates it when missing and requires it to be writable.
   * Returns the absolute path.
   */
  directory(help: string, fallback: string | undefined, mode: 'read' | 'write'): Option<string> {
    return option('DIR', help, fallback, (raw) => {
      const path = resolve(raw);
      let stat: ReturnType<typeof statSync>;
      try {
        stat = statSync(path, { throwIfNoEntry: false });
      } catch (err) {
        throw new Error(`must be a usable directory path (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
      }
      if (stat && !stat.isDirectory()) throw new Error('must be a directory (it is a file)');
      if (!stat && mode === 'read') throw new Error('must be an existing directory (no such path)');
      if (!stat) {
        try {
          mkdirSync(path, { recursive: true });
        } catch (err) {
          throw new Error(`must be a directory that can be created (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
        }
      }
      try {
        accessSync(path, mode === 'write' ? constants.R_OK | constants.W_OK : constants.R_OK);
      } catch {
        throw new Error(`must be a ${mode === 'write' ? 'writable' : 'readable'} directory`);
      }
      return path;
    });
  },

  /** An existing readable file. Returns the absolute path. */
  file(help: string, fallback: string | undefined): Option<string> {
    return option('FILE', help, fallback, (raw) => {
      const path = resolve(raw);
      let isFile = false;
      try {
        isFile = statSync(path).isFile();
      } catch {
        throw new Error('must be an existing readable file (no such path)');
      }
      if (!isFile) throw new Error('must be a file (it is a directory)');
      try {
        accessSync(path, constants.R_OK);
      } catch {
        throw new Error('must be a readable file');
      }
      return path;
    });
  },

  /** Makes any option optional: absent stays undefined. */
  optional<T>(inner: Option<T>): Option<T | undefined> {
    return { ...inner, default: undefined, optional: true };
  },
};

function parseAddress(raw: string): string {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d+)$/.exec(raw.trim());
  if (!m) throw new Error('must be host:port');
  parseInteger(m[2] ?? '', 1, 65535);
  return raw.trim();
}

/** camelCase → kebab-case flag name. */
export function flagName(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** camelCase → PREFIX_UPPER_SNAKE environment variable. */
export function envName(prefix: string, key: string): string {
  return `${prefix}_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

export interface LoadOptions {
  /** Arguments after the program name. */
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  /** Environment prefix, e.g. `PURIFY_SEGMENTER`. */
  envPrefix: string;
  /** Program name for messages and help. */
  program: string;
}

/** Parses flags and environment against `schema`; throws ConfigError or HelpRequested. */
export function loadConfig<S extends Schema>(schema: S, options: LoadOptions): ConfigOf<S> {
  const byFlag = new Map(Object.keys(schema).map((key) => [flagName(key), key]));
  const fromFlags = new Map<string, string>();
  const args = [...options.argv];
  while (args.length > 0) {
    const arg = args.shift() as string;
    if (arg === '--help' || arg === '-h') throw new HelpRequested(helpText(schema, options));
    if (!arg.startsWith('--')) {
      throw new ConfigError(`${options.program}: unexpected argument "${arg}" (settings are given as --name value)`);
    }
    const eq = arg.indexOf('=');
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    const key = byFlag.get(flag);
    if (key === undefined) {
      throw new ConfigError(
        `${options.program}: unknown flag ${flag} (known: ${[...byFlag.keys()].join(', ')}, --help)`,
      );
    }
    const spec = schema[key] as Option<unknown>;
    let value: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    if (value === undefined) {
      const next = args[0];
      if (spec.isFlag && (next === undefined || next.startsWith('--'))) value = 'true';
      else if (next === undefined) throw new ConfigError(`${options.program}: ${flag} needs a value (${spec.metavar})`);
      else {
        value = next;
        args.shift();
      }
    }
    fromFlags.set(key, value);
  }

  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(schema)) {
    const env = envName(options.envPrefix, key);
    const source = fromFlags.has(key) ? `flag ${flagName(key)}` : options.env[env] !== undefined ? `env ${env}` : undefined;
    const raw = fromFlags.get(key) ?? options.env[env];
    if (raw === undefined || source === undefined) {
      if (spec.default === undefined && !spec.optional) {
        throw new ConfigError(`${options.program}: missing setting ${flagName(key)} (or env ${env}): ${spec.help}`);
      }
      out[key] = spec.default;
      continue;
    }
    try {
      out[key] = spec.parse(raw);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new ConfigError(`${options.program}: invalid ${flagName(key)} (from ${source}): ${why}, got ${JSON.stringify(raw)}`);
    }
  }
  return out as ConfigOf<S>;
}

/** Help text listing every flag, its environment variable and default. */
export function helpText(schema: Schema, options: Pick<LoadOptions, 'envPrefix' | 'program'>): string {
  const lines = [`Usage: ${options.program} [flags]`, '', 'Flags (each also settable by its environment variable):'];
  for (const [key, spec] of Object.entries(schema)) {
    const dflt = spec.default === undefined ? '' : ` (default: ${Array.isArray(spec.default) ? spec.default.join(',') : JSON.stringify(spec.default)})`;
    lines.push(`  ${flagName(key)} ${spec.metavar}`, `      ${spec.help}${dflt}  [${envName(options.envPrefix, key)}]`);
  }
  return lines.join('\n');
}
