import { join } from 'node:path';
import { loadPackageDefinition, Metadata, status, type ChannelCredentials, type Client, type ClientOptions, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { PurifyError } from './errors';
import { targetFor } from './client';
import { clientCredentials, defaultClientTls, type ClientTlsSettings } from './tls';

/**
 * Probes any gRPC server through the standard health and reflection protocols,
 * as Kubernetes or grpcurl would: the launcher, `purify status` and the tests
 * use these, never a purify-specific call.
 */

export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

type Unary = (req: object, md: Metadata, opts: { deadline: number }, cb: (err: ServiceError | null, res: Record<string, unknown>) => void) => void;
type ClientCtor = new (target: string, creds: ChannelCredentials, options?: Partial<ClientOptions>) => Client & Record<string, Unary>;

/**
 * How a probe connects: TLS settings, or explicit credentials. Absent = the
 * process default (`setDefaultClientTls`), else plaintext.
 */
export type ProbeTransport = ClientTlsSettings | { readonly credentials: ChannelCredentials };

function connect(ctor: ClientCtor, address: string, transport: ProbeTransport | undefined): Client & Record<string, Unary> {
  if (transport && 'credentials' in transport) return new ctor(targetFor([address]), transport.credentials);
  const { credentials, options } = clientCredentials(transport ?? defaultClientTls());
  return new ctor(targetFor([address]), credentials, options);
}

let ctors: { health: ClientCtor; reflection: ClientCtor } | undefined;

function clients(): { health: ClientCtor; reflection: ClientCtor } {
  if (!ctors) {
    const reflectionDir = join(require.resolve('@grpc/reflection/package.json'), '..', 'build', 'proto');
    const pkg = loadPackageDefinition(
      loadSync([healthProtoPath, join(reflectionDir, 'grpc/reflection/v1/reflection.proto')], {
        includeDirs: [reflectionDir],
        keepCase: true,
        enums: String,
      }),
    ) as unknown as { grpc: { health: { v1: { Health: ClientCtor } }; reflection: { v1: { ServerReflection: ClientCtor } } } };
    ctors = { health: pkg.grpc.health.v1.Health, reflection: pkg.grpc.reflection.v1.ServerReflection };
  }
  return ctors;
}

/** `grpc.health.v1.Health/Check` for `service` ('' = the whole server). */
export async function checkHealth(address: string, service = '', timeoutMs = 2000, transport?: ProbeTransport): Promise<ServingStatus> {
  const client = connect(clients().health, address, transport);
  try {
    return await new Promise<ServingStatus>((resolve, reject) => {
      (client['Check'] as Unary)({ service }, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err) {
          if (err.code === status.NOT_FOUND) resolve('SERVICE_UNKNOWN');
          else reject(PurifyError.wrap(err, `health check of ${address}`));
        } else resolve(String(res['status']) as ServingStatus);
      });
    });
  } finally {
    client.close();
  }
}

/** Services a server lists through reflection (`grpc.reflection.v1`). */
export async function listServices(address: string, timeoutMs = 2000, transport?: ProbeTransport): Promise<string[]> {
  const client = connect(clients().reflection, address, transport);
  try {
    return await new Promise<string[]>((resolve, reject) => {
      const stream = (client['ServerReflectionInfo'] as unknown as (md: Metadata, opts: { deadline: number }) => NodeJS.ReadWriteStream & { end(): void })(
        new Metadata(),
        { deadline: Date.now() + timeoutMs },
      );
      stream.on('data', (res: { list_services_response?: { service: { name: string }[] }; error_response?: { error_message: string } }) => {
        if (res.list_services_response) resolve(res.list_services_response.service.map((s) => s.name).sort());
        else reject(PurifyError.wrap(new Error(res.error_response?.error_message ?? 'unexpected reflection answer'), `reflection on ${address}`));
      });
      stream.on('error', (err: unknown) => reject(PurifyError.wrap(err, `reflection on ${address}`)));
      stream.write({ list_services: '' } as never);
      stream.end();
    });
  } finally {
    client.close();
  }
}

/** Polls health until SERVING or `timeoutMs` passes. */
export async function waitUntilServing(address: string, timeoutMs: number, intervalMs = 100, transport?: ProbeTransport): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < until) {
    try {
      const status = await checkHealth(address, '', Math.min(1000, Math.max(1, until - Date.now())), transport);
      if (status === 'SERVING') return;
      last = status;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new PurifyError('DEADLINE_EXCEEDED', `${address} did not become SERVING within ${timeoutMs} ms (last: ${last})`);
}
