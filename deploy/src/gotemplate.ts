import { stringify as yamlStringify } from 'yaml';

/**
 * A small interpreter for the part of Go's `text/template` (plus the Helm and
 * sprig functions listed in {@link FUNCTIONS}) that our Helm chart uses, so
 * the chart can be rendered in tests without a `helm` binary.
 *
 * Supported: text and `{{ }}` actions with `{{-`/`-}}` trimming and
 * `{{/* comments *\/}}`; pipelines (`a | b c`) and parenthesised pipelines;
 * fields (`.A.B`), `$`, variables (`$x := …`, `$x = …`, `range $i, $v := …`);
 * `if`/`else if`/`else`, `range` (arrays; maps in key order) with `else`,
 * `with`/`else`, `define`, `template`, and the functions in {@link FUNCTIONS}.
 *
 * Go semantics kept on purpose, because a real `helm template` has them:
 * - numbers from values are float64 in Helm; printed with `%v` they switch to
 *   exponent form from 1e6 (`1e+06`, `6.7108864e+07`), so templates print big
 *   numbers through `int` (a JS bigint here) or `toYaml`;
 * - a field of a missing value fails (`nil pointer evaluating interface {}.x`);
 * - a missing map key prints as nothing (Helm strips `<no value>`);
 * - `eq` between an int and a float is an error.
 * Not supported (a parse error here): `block`, `break`/`continue`, method
 * calls, character constants, and every function not in {@link FUNCTIONS}.
 */

export class TemplateError extends Error {
  override readonly name = 'TemplateError';
}

type Value = unknown;
type Fn = (...args: Value[]) => Value;

// ---------------------------------------------------------------- values

/** Go truthiness: false, 0, nil, and empty strings, arrays and maps are false. */
export function truthy(v: Value): boolean {
  if (v === undefined || v === null || v === false) return false;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'bigint') return v !== 0n;
  if (typeof v === 'string' || Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

/**
 * Go's `%v` of a float64: strconv 'g' with the shortest digits, in exponent
 * form when the decimal exponent is < -4 or >= 6 (`1e+06`, `6.7108864e+07`).
 */
export function formatFloat(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (!Number.isFinite(n)) return n > 0 ? '+Inf' : '-Inf';
  if (n === 0) return Object.is(n, -0) ? '-0' : '0';
  // Shortest round-trip digits and decimal exponent.
  const [mantissa, expPart] = n.toExponential().split('e') as [string, string];
  const exp = Number(expPart);
  // strconv.FormatFloat(f, 'g', -1, 64): %e when exp < -4 || exp >= 6 (precision 6 for shortest).
  if (exp < -4 || exp >= 6) {
    const sign = exp < 0 ? '-' : '+';
    const digits = String(Math.abs(exp)).padStart(2, '0');
    return `${mantissa}e${sign}${digits}`;
  }
  return String(n);
}

/** Go's `%v` of a value as templates print it. */
export function goString(v: Value): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return formatFloat(v);
  if (typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(goString).join(' ')}]`;
  if (typeof v === 'object') {
    return `map[${Object.keys(v)
      .sort()
      .map((k) => `${k}:${goString((v as Record<string, Value>)[k])}`)
      .join(' ')}]`;
  }
  // Functions and symbols never reach templates from YAML values.
  return '';
}

function isMap(v: Value): v is Record<string, Value> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Go `%q`-style quoting (JSON escaping, which agrees for printable text). */
function goQuote(s: string): string {
  return JSON.stringify(s);
}

function toInt(v: Value): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(Math.trunc(v));
  if (typeof v === 'string') return /^-?\d+$/.test(v.trim()) ? BigInt(v.trim()) : 0n;
  if (typeof v === 'boolean') return v ? 1n : 0n;
  return 0n;
}

function compare(op: string, a: Value, b: Value): number {
  if ((typeof a === 'bigint' && typeof b === 'number') || (typeof a === 'number' && typeof b === 'bigint')) {
    throw new TemplateError(`error calling ${op}: incompatible types for comparison`);
  }
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if ((typeof a === 'number' || typeof a === 'bigint') && typeof a === typeof b) return a < (b as number) ? -1 : a > (b as number) ? 1 : 0;
  throw new TemplateError(`error calling ${op}: incompatible types for comparison`);
}

function goPrintf(format: string, args: Value[]): string {
  let i = 0;
  return format.replace(/%([%sdvq])/g, (_m, verb: string) => {
    if (verb === '%') return '%';
    const arg = args[i++];
    if (verb === 'd') return toInt(arg).toString();
    if (verb === 'q') return goQuote(goString(arg));
    return goString(arg);
  });
}

/** Helm's `toYaml`: YAML of the value without the trailing newline; map keys sorted (Go marshals maps sorted). */
function toYaml(v: Value): string {
  if (v === undefined || v === null) return 'null';
  const plain = JSON.parse(JSON.stringify(v, (_k, x: Value) => (typeof x === 'bigint' ? Number(x) : x))) as Value;
  return yamlStringify(plain, { sortMapEntries: true, lineWidth: 0 }).replace(/\n$/, '');
}

function mergeMaps(maps: Value[]): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const m of maps) {
    if (!isMap(m)) continue;
    for (const [k, v] of Object.entries(m)) {
      if (!(k in out)) out[k] = v;
      else if (isMap(out[k]) && isMap(v)) out[k] = mergeMaps([out[k], v]);
    }
  }
  return out;
}

function indentLines(n: Value, s: Value): string {
  const pad = ' '.repeat(Number(toInt(n)));
  return goString(s)
    .split('\n')
    .map((line) => pad + line)
    .join('\n');
}

/** Functions available in templates (Go built-ins, Helm's `include`, and the sprig functions we use). */
export const FUNCTIONS: Readonly<Record<string, Fn>> = {
  // Go built-ins
  and: (...args) => args.find((a) => !truthy(a)) ?? args[args.length - 1],
  or: (...args) => args.find((a) => truthy(a)) ?? args[args.length - 1],
  not: (a) => !truthy(a),
  eq: (a, ...bs) => bs.some((b) => compare('eq', a, b) === 0),
  ne: (a, b) => compare('ne', a, b) !== 0,
  lt: (a, b) => compare('lt', a, b) < 0,
  le: (a, b) => compare('le', a, b) <= 0,
  gt: (a, b) => compare('gt', a, b) > 0,
  ge: (a, b) => compare('ge', a, b) >= 0,
  len: (a) => BigInt(typeof a === 'string' || Array.isArray(a) ? a.length : isMap(a) ? Object.keys(a).length : 0),
  index: (a, ...keys) =>
    keys.reduce<Value>((cur, k) => {
      if (Array.isArray(cur)) return cur[Number(toInt(k))];
      if (isMap(cur)) return cur[goString(k)];
      throw new TemplateError(`error calling index: cannot index ${goString(cur)}`);
    }, a),
  print: (...args) => args.map(goString).join(''),
  printf: (format, ...args) => goPrintf(goString(format), args),
  // sprig
  quote: (...args) => args.map((a) => goQuote(goString(a))).join(' '),
  squote: (...args) => args.map((a) => `'${goString(a)}'`).join(' '),
  default: (dflt, ...given) => (given.length > 0 && truthy(given[0]) ? given[0] : dflt),
  empty: (a) => !truthy(a),
  required: (msg, v) => {
    if (v === undefined || v === null || v === '') throw new TemplateError(goString(msg));
    return v;
  },
  indent: indentLines,
  nindent: (n, s) => `\n${indentLines(n, s)}`,
  toYaml,
  toString: (a: Value) => goString(a),
  int: (a) => toInt(a),
  int64: (a) => toInt(a),
  lower: (s) => goString(s).toLowerCase(),
  upper: (s) => goString(s).toUpperCase(),
  trim: (s) => goString(s).trim(),
  trunc: (n, s) => goString(s).slice(0, Number(toInt(n))),
  trimSuffix: (suffix, s) => {
    const str = goString(s);
    const suf = goString(suffix);
    return suf !== '' && str.endsWith(suf) ? str.slice(0, -suf.length) : str;
  },
  replace: (from, to, s) => goString(s).split(goString(from)).join(goString(to)),
  contains: (sub, s) => goString(s).includes(goString(sub)),
  hasKey: (m, k) => isMap(m) && Object.prototype.hasOwnProperty.call(m, goString(k)),
  dict: (...kv) => {
    const out: Record<string, Value> = {};
    for (let i = 0; i + 1 < kv.length; i += 2) out[goString(kv[i])] = kv[i + 1];
    return out;
  },
  list: (...items) => items,
  concat: (...lists) => lists.flatMap((l) => (Array.isArray(l) ? (l as Value[]) : [])),
  keys: (...maps) => maps.flatMap((m) => (isMap(m) ? Object.keys(m) : [])),
  /** sprig `merge`: a new map with the keys of every map, the first map that has a key winning (deeply). */
  merge: (...maps) => mergeMaps(maps),
  b64enc: (s) => Buffer.from(goString(s), 'utf8').toString('base64'),
  join: (sep, items) => (Array.isArray(items) ? items.map(goString).join(goString(sep)) : goString(items)),
};

// ---------------------------------------------------------------- lexing

interface TextToken {
  readonly kind: 'text';
  readonly text: string;
}
interface ActionToken {
  readonly kind: 'action';
  readonly body: string;
  readonly line: number;
}
type Token = TextToken | ActionToken;

function lex(source: string, name: string): Token[] {
  const tokens: Token[] = [];
  let pos = 0;
  let trimNext = false;
  while (pos < source.length) {
    const open = source.indexOf('{{', pos);
    let text = open === -1 ? source.slice(pos) : source.slice(pos, open);
    if (trimNext) text = text.replace(/^\s+/, '');
    trimNext = false;
    if (open === -1) {
      if (text) tokens.push({ kind: 'text', text });
      break;
    }
    let bodyStart = open + 2;
    if (/^- /.test(source.slice(open + 2, open + 4)) || source.slice(open + 2, open + 4) === '-\n' || source.slice(open + 2, open + 4) === '-\t') {
      text = text.replace(/\s+$/, '');
      bodyStart += 1;
    }
    if (text) tokens.push({ kind: 'text', text });
    const line = source.slice(0, open).split('\n').length;
    // Find the closing braces outside string literals (and after a comment's end).
    let i = bodyStart;
    const commentStart = /^\s*\/\*/.exec(source.slice(bodyStart));
    if (commentStart) {
      const end = source.indexOf('*/', bodyStart);
      if (end === -1) throw new TemplateError(`${name}:${line}: unclosed comment`);
      i = end + 2;
    }
    let quote: string | undefined;
    for (; i < source.length; i++) {
      const c = source[i];
      if (quote) {
        if (c === '\\' && quote === '"') i++;
        else if (c === quote) quote = undefined;
      } else if (c === '"' || c === '`') quote = c;
      else if (source.startsWith('}}', i)) break;
    }
    if (i >= source.length) throw new TemplateError(`${name}:${line}: unclosed action`);
    let body = source.slice(bodyStart, i);
    if (/[ \t\n]-$/.test(body)) {
      body = body.slice(0, -1);
      trimNext = true;
    }
    tokens.push({ kind: 'action', body: body.trim(), line });
    pos = i + 2;
  }
  return tokens;
}

type Lexeme =
  | { t: 'str'; v: string }
  | { t: 'num'; v: number | bigint }
  | { t: 'bool'; v: boolean }
  | { t: 'nil' }
  | { t: 'field'; path: string[] }
  | { t: 'var'; name: string; path: string[] }
  | { t: 'ident'; v: string }
  | { t: 'op'; v: '(' | ')' | '|' | ':=' | '=' | ',' }
  | { t: 'fieldAfter'; path: string[] };

function lexAction(body: string, where: string): Lexeme[] {
  const out: Lexeme[] = [];
  let i = 0;
  const fieldPath = (start: number): [string[], number] => {
    const m = /^(\.[A-Za-z_][A-Za-z0-9_]*)+/.exec(body.slice(start));
    if (!m) return [[], start];
    return [m[0].slice(1).split('.'), start + m[0].length];
  };
  while (i < body.length) {
    const c = body[i] as string;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"') {
      let j = i + 1;
      while (j < body.length && body[j] !== '"') j += body[j] === '\\' ? 2 : 1;
      out.push({ t: 'str', v: JSON.parse(body.slice(i, j + 1)) as string });
      i = j + 1;
    } else if (c === '`') {
      const j = body.indexOf('`', i + 1);
      out.push({ t: 'str', v: body.slice(i + 1, j) });
      i = j + 1;
    } else if (c === '(' || c === ')' || c === '|' || c === ',') {
      out.push({ t: 'op', v: c });
      i++;
      if (c === ')' && body[i] === '.') {
        const [path, next] = fieldPath(i);
        out.push({ t: 'fieldAfter', path });
        i = next;
      }
    } else if (body.startsWith(':=', i)) {
      out.push({ t: 'op', v: ':=' });
      i += 2;
    } else if (c === '=') {
      out.push({ t: 'op', v: '=' });
      i++;
    } else if (c === '.') {
      const [path, next] = fieldPath(i);
      out.push({ t: 'field', path });
      i = next === i ? i + 1 : next;
    } else if (c === '$') {
      const m = /^\$[A-Za-z0-9_]*/.exec(body.slice(i)) as RegExpExecArray;
      const [path, next] = fieldPath(i + m[0].length);
      out.push({ t: 'var', name: m[0], path });
      i = next;
    } else if (/[-+0-9]/.test(c)) {
      const m = /^[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+)/.exec(body.slice(i));
      if (!m) throw new TemplateError(`${where}: unexpected "${c}" in action`);
      out.push({ t: 'num', v: /^[-+]?\d+$/.test(m[0]) ? BigInt(m[0]) : Number(m[0]) });
      i += m[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(body.slice(i)) as RegExpExecArray;
      const w = m[0];
      if (w === 'true' || w === 'false') out.push({ t: 'bool', v: w === 'true' });
      else if (w === 'nil') out.push({ t: 'nil' });
      else out.push({ t: 'ident', v: w });
      i += w.length;
    } else {
      throw new TemplateError(`${where}: unexpected "${c}" in action`);
    }
  }
  return out;
}

// ---------------------------------------------------------------- parsing

type Operand =
  | { k: 'lit'; v: Value }
  | { k: 'field'; path: string[] }
  | { k: 'var'; name: string; path: string[] }
  | { k: 'call'; fn: string; args: Operand[] }
  | { k: 'pipe'; pipe: Pipeline; path: string[] };
interface Pipeline {
  readonly decl?: { readonly names: string[]; readonly assign: boolean };
  readonly cmds: Operand[][];
  readonly where: string;
}
type Node =
  | { n: 'text'; text: string }
  | { n: 'action'; pipe: Pipeline }
  | { n: 'if'; branches: { pipe: Pipeline; body: Node[] }[]; otherwise: Node[] }
  | { n: 'range'; pipe: Pipeline; body: Node[]; otherwise: Node[] }
  | { n: 'with'; pipe: Pipeline; body: Node[]; otherwise: Node[] }
  | { n: 'template'; name: string; pipe: Pipeline | undefined };

function parsePipeline(lexemes: Lexeme[], where: string): Pipeline {
  let pos = 0;
  let decl: Pipeline['decl'];
  // `$a := …`, `$a = …`, `$i, $v := …`
  const declMatch = (): boolean => {
    const names: string[] = [];
    let p = 0;
    for (;;) {
      const l = lexemes[p];
      if (l?.t !== 'var' || l.path.length > 0) return false;
      names.push(l.name);
      p++;
      const next = lexemes[p];
      if (next?.t === 'op' && next.v === ',') {
        p++;
        continue;
      }
      if (next?.t === 'op' && (next.v === ':=' || next.v === '=')) {
        decl = { names, assign: next.v === '=' };
        pos = p + 1;
        return true;
      }
      return false;
    }
  };
  declMatch();

  const parseOperand = (): Operand => {
    const l = lexemes[pos++];
    if (!l) throw new TemplateError(`${where}: missing value`);
    switch (l.t) {
      case 'str':
      case 'num':
      case 'bool':
        return { k: 'lit', v: l.v };
      case 'nil':
        return { k: 'lit', v: undefined };
      case 'field':
        return { k: 'field', path: l.path };
      case 'var':
        return { k: 'var', name: l.name, path: l.path };
      case 'ident':
        if (!(l.v in FUNCTIONS) && l.v !== 'include') throw new TemplateError(`${where}: function "${l.v}" not defined`);
        return { k: 'call', fn: l.v, args: [] };
      case 'op':
        if (l.v === '(') {
          let depth = 1;
          const start = pos;
          while (pos < lexemes.length && depth > 0) {
            const x = lexemes[pos++];
            if (x?.t === 'op' && x.v === '(') depth++;
            if (x?.t === 'op' && x.v === ')') depth--;
          }
          if (depth !== 0) throw new TemplateError(`${where}: unclosed "("`);
          const inner = parsePipeline(lexemes.slice(start, pos - 1), where);
          const after = lexemes[pos];
          if (after?.t === 'fieldAfter') {
            pos++;
            return { k: 'pipe', pipe: inner, path: after.path };
          }
          return { k: 'pipe', pipe: inner, path: [] };
        }
        throw new TemplateError(`${where}: unexpected "${l.v}"`);
      default:
        throw new TemplateError(`${where}: unexpected token`);
    }
  };

  const cmds: Operand[][] = [];
  let cmd: Operand[] = [];
  while (pos < lexemes.length) {
    const l = lexemes[pos];
    if (l?.t === 'op' && l.v === '|') {
      if (cmd.length === 0) throw new TemplateError(`${where}: missing command before "|"`);
      cmds.push(cmd);
      cmd = [];
      pos++;
      continue;
    }
    cmd.push(parseOperand());
  }
  if (cmd.length > 0) cmds.push(cmd);
  if (cmds.length === 0 && !decl) throw new TemplateError(`${where}: missing value`);
  return { decl, cmds, where };
}

interface Parsed {
  readonly main: Node[];
  readonly defines: Map<string, Node[]>;
}

/** Parses a template; `define`d templates go to `defines`. */
export function parseTemplate(source: string, name: string): Parsed {
  const tokens = lex(source, name);
  const defines = new Map<string, Node[]>();
  let pos = 0;

  // Returns the nodes up to a closing keyword and that keyword's action body.
  const parseList = (closers: readonly string[]): [Node[], string | undefined] => {
    const nodes: Node[] = [];
    while (pos < tokens.length) {
      const tok = tokens[pos++] as Token;
      if (tok.kind === 'text') {
        nodes.push({ n: 'text', text: tok.text });
        continue;
      }
      const where = `${name}:${tok.line}`;
      const body = tok.body;
      if (body.startsWith('/*')) continue;
      const keyword = /^[a-z]+/.exec(body)?.[0] ?? '';
      const rest = body.slice(keyword.length).trim();
      if (keyword === 'end' || keyword === 'else') {
        if (!closers.includes(keyword)) throw new TemplateError(`${where}: unexpected {{${body}}}`);
        return [nodes, body];
      }
      if (keyword === 'if') {
        const branches: { pipe: Pipeline; body: Node[] }[] = [];
        let cond = rest;
        let otherwise: Node[] = [];
        for (;;) {
          const pipe = parsePipeline(lexAction(cond, where), where);
          const [branchBody, closer] = parseList(['end', 'else']);
          branches.push({ pipe, body: branchBody });
          if (closer === undefined) throw new TemplateError(`${where}: unclosed {{if}}`);
          if (closer === 'end') break;
          const elseRest = closer.slice(4).trim();
          if (elseRest.startsWith('if ')) {
            cond = elseRest.slice(3);
            continue;
          }
          const [elseBody, end] = parseList(['end']);
          if (end === undefined) throw new TemplateError(`${where}: unclosed {{if}}`);
          otherwise = elseBody;
          break;
        }
        nodes.push({ n: 'if', branches, otherwise });
      } else if (keyword === 'range' || keyword === 'with') {
        const pipe = parsePipeline(lexAction(rest, where), where);
        const [blockBody, closer] = parseList(['end', 'else']);
        if (closer === undefined) throw new TemplateError(`${where}: unclosed {{${keyword}}}`);
        let otherwise: Node[] = [];
        if (closer !== 'end') {
          const [elseBody, end] = parseList(['end']);
          if (end === undefined) throw new TemplateError(`${where}: unclosed {{${keyword}}}`);
          otherwise = elseBody;
        }
        nodes.push({ n: keyword, pipe, body: blockBody, otherwise });
      } else if (keyword === 'define') {
        const defName = lexAction(rest, where)[0];
        if (defName?.t !== 'str') throw new TemplateError(`${where}: define needs a quoted name`);
        const [defBody, end] = parseList(['end']);
        if (end === undefined) throw new TemplateError(`${where}: unclosed {{define}}`);
        defines.set(defName.v, defBody);
      } else if (keyword === 'template') {
        const lexemes = lexAction(rest, where);
        const tplName = lexemes[0];
        if (tplName?.t !== 'str') throw new TemplateError(`${where}: template needs a quoted name`);
        nodes.push({ n: 'template', name: tplName.v, pipe: lexemes.length > 1 ? parsePipeline(lexemes.slice(1), where) : undefined });
      } else if (['block', 'break', 'continue'].includes(keyword)) {
        throw new TemplateError(`${where}: {{${keyword}}} is not supported by this renderer`);
      } else {
        nodes.push({ n: 'action', pipe: parsePipeline(lexAction(body, where), where) });
      }
    }
    return [nodes, undefined];
  };

  const [main, closer] = parseList([]);
  if (closer !== undefined) throw new TemplateError(`${name}: unexpected {{${closer}}}`);
  return { main, defines };
}

// ---------------------------------------------------------------- execution

class Scope {
  private readonly vars = new Map<string, Value>();
  constructor(private readonly parent?: Scope) {}
  declare(name: string, v: Value): void {
    this.vars.set(name, v);
  }
  assign(name: string, v: Value, where: string): void {
    if (this.vars.has(name)) this.vars.set(name, v);
    else if (this.parent) this.parent.assign(name, v, where);
    else throw new TemplateError(`${where}: undefined variable: ${name}`);
  }
  get(name: string, where: string): Value {
    if (this.vars.has(name)) return this.vars.get(name);
    if (this.parent) return this.parent.get(name, where);
    throw new TemplateError(`${where}: undefined variable: ${name}`);
  }
}

function field(v: Value, path: readonly string[], where: string): Value {
  let cur = v;
  for (const key of path) {
    if (cur === undefined || cur === null) throw new TemplateError(`${where}: nil pointer evaluating interface {}.${key}`);
    if (!isMap(cur)) throw new TemplateError(`${where}: can't evaluate field ${key} in type ${Array.isArray(cur) ? 'slice' : typeof cur}`);
    cur = cur[key];
  }
  return cur;
}

/** A set of parsed templates sharing their `define`s, as Helm loads a chart. */
export class TemplateSet {
  private readonly templates = new Map<string, Node[]>();
  private readonly defines = new Map<string, Node[]>();

  /** Adds a template file (its `define`s become available to every template). */
  add(name: string, source: string): void {
    const parsed = parseTemplate(source, name);
    this.templates.set(name, parsed.main);
    for (const [defName, body] of parsed.defines) this.defines.set(defName, body);
  }

  /** Renders template file `name` with `data` as `.` and `$`. */
  render(name: string, data: Value): string {
    const nodes = this.templates.get(name);
    if (!nodes) throw new TemplateError(`no template ${JSON.stringify(name)}`);
    const scope = new Scope();
    scope.declare('$', data);
    return this.exec(nodes, data, scope);
  }

  private include(name: Value, data: Value): string {
    const body = this.defines.get(goString(name));
    if (!body) throw new TemplateError(`error calling include: template ${JSON.stringify(goString(name))} not defined`);
    const scope = new Scope();
    scope.declare('$', data);
    return this.exec(body, data, scope);
  }

  private exec(nodes: readonly Node[], dot: Value, scope: Scope): string {
    let out = '';
    for (const node of nodes) {
      switch (node.n) {
        case 'text':
          out += node.text;
          break;
        case 'action': {
          const v = this.pipeline(node.pipe, dot, scope);
          if (!node.pipe.decl) out += goString(v);
          break;
        }
        case 'if': {
          const inner = new Scope(scope);
          const branch = node.branches.find((b) => truthy(this.pipeline(b.pipe, dot, inner)));
          out += this.exec(branch ? branch.body : node.otherwise, dot, inner);
          break;
        }
        case 'with': {
          const inner = new Scope(scope);
          const v = this.pipeline(node.pipe, dot, inner);
          out += truthy(v) ? this.exec(node.body, v, inner) : this.exec(node.otherwise, dot, inner);
          break;
        }
        case 'range': {
          const inner = new Scope(scope);
          const v = this.pipeline({ ...node.pipe, decl: undefined }, dot, inner);
          const entries: [Value, Value][] = Array.isArray(v)
            ? v.map((item, i) => [BigInt(i), item])
            : isMap(v)
              ? Object.keys(v)
                  .sort()
                  .map((k) => [k, v[k]])
              : v === undefined || v === null
                ? []
                : (() => {
                    throw new TemplateError(`${node.pipe.where}: range can't iterate over ${goString(v)}`);
                  })();
          if (entries.length === 0) {
            out += this.exec(node.otherwise, dot, inner);
            break;
          }
          const names = node.pipe.decl?.names ?? [];
          for (const [key, item] of entries) {
            const iteration = new Scope(inner);
            if (names.length === 1) iteration.declare(names[0] as string, item);
            if (names.length === 2) {
              iteration.declare(names[0] as string, key);
              iteration.declare(names[1] as string, item);
            }
            out += this.exec(node.body, item, iteration);
          }
          break;
        }
        case 'template': {
          const data = node.pipe ? this.pipeline(node.pipe, dot, scope) : undefined;
          out += this.include(node.name, data);
          break;
        }
      }
    }
    return out;
  }

  private pipeline(pipe: Pipeline, dot: Value, scope: Scope): Value {
    let value: Value;
    let first = true;
    for (const cmd of pipe.cmds) {
      value = this.command(cmd, dot, scope, pipe.where, first ? [] : [value]);
      first = false;
    }
    if (pipe.decl) {
      const name = pipe.decl.names[0] as string;
      if (pipe.decl.assign) scope.assign(name, value, pipe.where);
      else scope.declare(name, value);
    }
    return value;
  }

  private command(cmd: readonly Operand[], dot: Value, scope: Scope, where: string, piped: Value[]): Value {
    const head = cmd[0] as Operand;
    if (head.k === 'call' && (head.fn === 'and' || head.fn === 'or')) {
      // Go 1.18+: and/or evaluate their arguments only as far as needed.
      const args = [...cmd.slice(1).map((a) => () => this.operand(a, dot, scope, where)), ...piped.map((p) => () => p)];
      let last: Value;
      for (const arg of args) {
        last = arg();
        if (head.fn === 'and' ? !truthy(last) : truthy(last)) return last;
      }
      return last;
    }
    if (head.k === 'call') {
      const args = [...cmd.slice(1).map((a) => this.operand(a, dot, scope, where)), ...piped];
      if (head.fn === 'include') return this.include(args[0], args[1]);
      const fn = FUNCTIONS[head.fn] as Fn;
      try {
        return fn(...args);
      } catch (err) {
        if (err instanceof TemplateError) throw new TemplateError(`${where}: ${err.message}`);
        throw err;
      }
    }
    if (cmd.length > 1 || piped.length > 0) throw new TemplateError(`${where}: can't give argument to non-function`);
    return this.operand(head, dot, scope, where);
  }

  private operand(op: Operand, dot: Value, scope: Scope, where: string): Value {
    switch (op.k) {
      case 'lit':
        return op.v;
      case 'field':
        return field(dot, op.path, where);
      case 'var':
        return field(scope.get(op.name, where), op.path, where);
      case 'call':
        return this.command([op], dot, scope, where, []);
      case 'pipe':
        return field(this.pipeline(op.pipe, dot, scope), op.path, where);
    }
  }
}
