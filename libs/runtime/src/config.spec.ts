import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, HelpRequested, envName, flagName, loadConfig, opt } from './config';

const dir = mkdtempSync(join(tmpdir(), 'purify-config-'));
const aFile = join(dir, 'a-file.txt');
writeFileSync(aFile, 'x');

const schema = {
  port: opt.port('port', 50151),
  host: opt.string('host', '127.0.0.1'),
  verbose: opt.bool('verbose', false),
  level: opt.oneOf('level', ['debug', 'info'] as const, 'info'),
  peers: opt.addresses('peers', ['127.0.0.1:1']),
  data: opt.directory('data', undefined, 'read'),
  cert: opt.optional(opt.file('cert', undefined)),
};
const load = (argv: string[], env: Record<string, string> = {}) =>
  loadConfig(schema, { argv: ['--data', dir, ...argv], env, envPrefix: 'PURIFY_TEST', program: 'purify-test' });

describe('loadConfig', () => {
  it('derives flag and environment names from the key', () => {
    expect(flagName('maxReceiveMessageBytes')).toBe('--max-receive-message-bytes');
    expect(envName('PURIFY_AGENT', 'maxReceiveMessageBytes')).toBe('PURIFY_AGENT_MAX_RECEIVE_MESSAGE_BYTES');
  });

  it.each([
    // [case, argv, env, expected subset]
    ['defaults', [], {}, { port: 50151, host: '127.0.0.1', verbose: false, level: 'info', cert: undefined }],
    ['flag with space', ['--port', '7000'], {}, { port: 7000 }],
    ['flag with =', ['--port=0'], {}, { port: 0 }],
    ['env when no flag', [], { PURIFY_TEST_PORT: '7001' }, { port: 7001 }],
    ['flag beats env', ['--port', '7002'], { PURIFY_TEST_PORT: '7001' }, { port: 7002 }],
    ['bare boolean flag', ['--verbose'], {}, { verbose: true }],
    ['boolean from env', [], { PURIFY_TEST_VERBOSE: 'off' }, { verbose: false }],
    ['address list', ['--peers', '10.0.0.1:5,10.0.0.2:6'], {}, { peers: ['10.0.0.1:5', '10.0.0.2:6'] }],
    ['readable file', ['--cert', aFile], {}, { cert: aFile }],
  ])('%s', (_name, argv, env, expected) => {
    expect(load(argv, env)).toMatchObject(expected);
  });

  it.each([
    // [case, argv, env, exact one-line message]
    ['port above range', ['--port', '70000'], {}, 'purify-test: invalid --port (from flag --port): must be an integer in [0, 65535], got "70000"'],
    ['port not a number', [], { PURIFY_TEST_PORT: 'http' }, 'purify-test: invalid --port (from env PURIFY_TEST_PORT): must be an integer in [0, 65535], got "http"'],
    ['negative port', ['--port=-1'], {}, 'purify-test: invalid --port (from flag --port): must be an integer in [0, 65535], got "-1"'],
    ['unknown flag', ['--prot', '1'], {}, 'purify-test: unknown flag --prot (known: --port, --host, --verbose, --level, --peers, --data, --cert, --help)'],
    ['positional argument', ['serve'], {}, 'purify-test: unexpected argument "serve" (settings are given as --name value)'],
    ['missing value', ['--host'], {}, 'purify-test: --host needs a value (TEXT)'],
    ['bad enum', ['--level', 'loud'], {}, 'purify-test: invalid --level (from flag --level): must be one of debug, info, got "loud"'],
    ['bad address', ['--peers', 'localhost'], {}, 'purify-test: invalid --peers (from flag --peers): must be host:port, got "localhost"'],
    ['directory that does not exist', ['--data', join(dir, 'nope')], {}, `purify-test: invalid --data (from flag --data): must be an existing directory (no such path), got ${JSON.stringify(join(dir, 'nope'))}`],
    ['file where a directory is expected', ['--data', aFile], {}, `purify-test: invalid --data (from flag --data): must be a directory (it is a file), got ${JSON.stringify(aFile)}`],
    ['unreadable file path', ['--cert', join(dir, 'missing.pem')], {}, `purify-test: invalid --cert (from flag --cert): must be an existing readable file (no such path), got ${JSON.stringify(join(dir, 'missing.pem'))}`],
  ])('rejects %s with a one-line message naming the setting and value', (_name, argv, env, message) => {
    let caught: unknown;
    try {
      load(argv, env);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as Error).message).toBe(message);
    expect((caught as Error).message).not.toContain('\n');
  });

  it('names a required setting that is missing', () => {
    expect(() => loadConfig(schema, { argv: [], env: {}, envPrefix: 'PURIFY_TEST', program: 'p' })).toThrow(
      new ConfigError('p: missing setting --data (or env PURIFY_TEST_DATA): data'),
    );
  });

  it('creates a missing writable directory, and refuses one under a file', () => {
    const writable = { out: opt.directory('out', undefined, 'write') };
    const target = join(dir, 'new', 'nested');
    expect(loadConfig(writable, { argv: ['--out', target], env: {}, envPrefix: 'X', program: 'p' })).toEqual({ out: target });
    expect(() => loadConfig(writable, { argv: ['--out', join(aFile, 'sub')], env: {}, envPrefix: 'X', program: 'p' })).toThrow(
      /^p: invalid --out \(from flag --out\): must be a usable directory path \(ENOTDIR\)|must be a directory that can be created \(ENOTDIR\)/,
    );
  });

  it('answers --help with every flag and its environment variable', () => {
    expect(() => load(['--help'])).toThrow(HelpRequested);
    try {
      load(['--help']);
    } catch (err) {
      expect((err as Error).message).toContain('--port PORT');
      expect((err as Error).message).toContain('[PURIFY_TEST_PORT]');
    }
  });
});
