/**
 * Reads a Prometheus endpoint (ours: `--metrics-port`): one plain HTTP GET on
 * loopback or a pod address (no keep-alive), parsed into samples. Used by the
 * service tests and usable by tools that check a running service.
 */
import { get } from 'node:http';

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** The raw text of `GET http://<address>/metrics`. */
export function scrapeText(address: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(`http://${address}/metrics`, { agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`GET /metrics answered ${res.statusCode}: ${body}`))));
    }).on('error', reject);
  });
}

/** Parses Prometheus text exposition lines `name{a="b",…} value` (comments skipped). */
export function parseSamples(text: string): Sample[] {
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!m) throw new Error(`not a sample line: ${line}`);
      const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1] as string, l[2] as string]));
      return { name: m[1] as string, labels, value: Number(m[3]) };
    });
}

/** The samples of `address`'s endpoint. */
export async function scrape(address: string): Promise<Sample[]> {
  return parseSamples(await scrapeText(address));
}

/** Values of the samples named `name` whose labels include `labels`. */
export function valuesOf(all: readonly Sample[], name: string, labels: Readonly<Record<string, string>> = {}): number[] {
  return all.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).map((s) => s.value);
}
