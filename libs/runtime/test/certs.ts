// Test certificates made with the openssl CLI: two independent CAs and leaf
// certificates (EC P-256, valid one day) signed by them. Nothing is checked in.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Pair {
  readonly cert: string;
  readonly key: string;
}

export interface TestPki {
  readonly dir: string;
  /** The CA the servers and good clients use. */
  readonly ca: Pair;
  /** An unrelated CA. */
  readonly otherCa: Pair;
  /** Server certificate from `ca` for DNS:localhost, IP:127.0.0.1. */
  readonly server: Pair;
  /** Server certificate from `ca` naming only DNS:purify-agent.test. */
  readonly namedServer: Pair;
  /** Client certificate from `ca`. */
  readonly client: Pair;
  /** Client certificate from `otherCa`. */
  readonly strangerClient: Pair;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeCa(dir: string, name: string): Pair {
  const pair = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  openssl(
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      '-keyout', pair.key, '-out', pair.cert],
    dir,
  );
  return pair;
}

function makeLeaf(dir: string, name: string, ca: Pair, san: string, usage: string): Pair {
  const pair = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=${usage}\n${san ? `subjectAltName=${san}\n` : ''}`);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${name}`, '-keyout', pair.key, '-out', csr], dir);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '1', '-extfile', ext, '-out', pair.cert], dir);
  return pair;
}

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'purify-pki-'));
  const ca = makeCa(dir, 'purify-test-ca');
  const otherCa = makeCa(dir, 'other-ca');
  return {
    dir,
    ca,
    otherCa,
    server: makeLeaf(dir, 'server', ca, 'DNS:localhost,IP:127.0.0.1', 'serverAuth,clientAuth'),
    namedServer: makeLeaf(dir, 'named-server', ca, 'DNS:purify-agent.test', 'serverAuth'),
    client: makeLeaf(dir, 'client', ca, '', 'clientAuth'),
    strangerClient: makeLeaf(dir, 'stranger', otherCa, '', 'clientAuth'),
  };
}
