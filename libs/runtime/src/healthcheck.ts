import { readFileSync } from 'node:fs';
import { credentials as grpcCredentials } from '@grpc/grpc-js';
import { SERVICE_NAMES, type ServiceKind } from '@purify/proto';
import { loadConfig } from './config';
import { checkHealth } from './probe';
import { serverSchema } from './settings';

/**
 * Health probe of a service from inside its own container:
 *
 *     node libs/runtime/dist/healthcheck.js <segmenter|reliability|agent|trainer>
 *
 * It reads the service's settings from the same environment variables the
 * service reads (`PURIFY_<SERVICE>_PORT`, `…_TLS_CERT`, `…_TLS_KEY`,
 * `…_CLIENT_TLS_CERT`, `…_CLIENT_TLS_KEY`; settings given as flags are not
 * visible to it, so containers configure services through the environment),
 * asks `grpc.health.v1.Health/Check` on `127.0.0.1:<port>` and exits 0 when the
 * service is SERVING, 1 otherwise, printing one line.
 *
 * Over TLS it does not verify the server certificate (it talks to its own
 * container over loopback and sends nothing secret); when the server requires
 * client certificates it presents `--client-tls-cert` (or else the server's own
 * certificate, which must then allow client authentication).
 *
 * Docker's HEALTHCHECK runs it; Kubernetes uses its native gRPC probe instead,
 * or this script (`exec`) when TLS is on, since the native probe cannot speak TLS.
 */

export interface HealthcheckResult {
  readonly ok: boolean;
  readonly message: string;
}

const KINDS = Object.keys(SERVICE_NAMES) as ServiceKind[];

export async function healthcheck(kind: string | undefined, env: Readonly<Record<string, string | undefined>>, timeoutMs = 3000): Promise<HealthcheckResult> {
  if (kind === undefined || !KINDS.includes(kind as ServiceKind)) {
    return { ok: false, message: `usage: healthcheck.js <${KINDS.join('|')}>, got ${JSON.stringify(kind ?? null)}` };
  }
  const service = kind as ServiceKind;
  let config: ReturnType<typeof loadConfig<ReturnType<typeof serverSchema>>>;
  try {
    config = loadConfig(serverSchema(service), { argv: [], env, envPrefix: `PURIFY_${service.toUpperCase()}`, program: `healthcheck ${service}` });
  } catch (err) {
    return { ok: false, message: err instanceof Error ? err.message : String(err) };
  }
  const address = `127.0.0.1:${config.port}`;
  let transport: Parameters<typeof checkHealth>[3];
  if (config.tlsCert !== undefined && config.tlsKey !== undefined) {
    const useClient = config.clientTlsCert !== undefined && config.clientTlsKey !== undefined;
    const certFile = useClient ? (config.clientTlsCert as string) : config.tlsCert;
    const keyFile = useClient ? (config.clientTlsKey as string) : config.tlsKey;
    const present = config.tlsCa !== undefined;
    transport = {
      credentials: grpcCredentials.createSsl(null, present ? readFileSync(keyFile) : null, present ? readFileSync(certFile) : null, {
        rejectUnauthorized: false,
      }),
    };
  } else {
    transport = undefined;
  }
  try {
    // Plaintext when the server has no certificate (never the process default: there is none here).
    const status = await checkHealth(address, '', timeoutMs, transport ?? { credentials: grpcCredentials.createInsecure() });
    return { ok: status === 'SERVING', message: `${service} at ${address}: ${status}` };
  } catch (err) {
    return { ok: false, message: `${service} at ${address}: ${err instanceof Error ? err.message : String(err)}` };
  }
}

if (require.main === module) {
  void healthcheck(process.argv[2], process.env).then((result) => {
    process.stdout.write(`${result.message}\n`);
    process.exit(result.ok ? 0 : 1);
  });
}
