import { createServer, type AddressInfo } from 'node:net';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago (bind to 0, read, close),
 * for listeners that cannot bind port 0 themselves, such as a Prometheus
 * endpoint whose port is a flag. Another process may take it in between; callers
 * that can bind port 0 directly should.
 */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
