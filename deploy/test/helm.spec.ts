// The Helm chart, rendered by our renderer (src/helm.ts — no helm binary here)
// under several value sets; every manifest is validated against the Kubernetes
// schemas by kubernetes-models (test/validate-k8s.mjs, a child process because
// its version 5 is ES-module only), then checked for what the schemas do not say.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { DEFAULT_PORTS } from '@purify/runtime';
import { TemplateError } from '../src/gotemplate';
import { renderChart, type RenderOptions, type RenderedManifest } from '../src/helm';

const CHART = join(__dirname, '..', 'helm', 'purify');
const SERVICES = ['segmenter', 'reliability', 'agent', 'trainer'] as const;
// Rendered manifests are untyped JSON; the checks reach into them freely.
/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-return */
type Obj = Record<string, any>;

const PEM = { cert: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', key: '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n', ca: '-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n' };

/** Value sets every manifest of which must validate. */
const SCENARIOS: Record<string, RenderOptions> = {
  defaults: {},
  mtlsInline: { values: { tls: { enabled: true, ...PEM } } },
  tlsExistingSecret: { values: { tls: { enabled: true, mutual: false, existingSecret: 'purify-certs' } } },
  gpu: { values: { services: { segmenter: { gpu: { enabled: true } }, trainer: { gpu: { enabled: true, count: 2 }, nodeSelector: { pool: 'train' } } } } },
  noPersistenceNoCollector: { values: { artifacts: { persistence: { enabled: false } }, telemetry: { collector: { enabled: false }, endpoint: 'http://otel.monitoring:4318' } } },
  existingClaimNoHpa: { values: { artifacts: { persistence: { existingClaim: 'shared-rwx' } }, services: { segmenter: { autoscaling: { enabled: false } } } } },
  otherRelease: { releaseName: 'prod', namespace: 'imaging' },
  withoutTrainer: { values: { services: { trainer: { enabled: false } } } },
};

const rendered: Record<string, RenderedManifest[]> = Object.fromEntries(Object.entries(SCENARIOS).map(([name, options]) => [name, renderChart(CHART, options)]));
const docs = (scenario: string): Obj[] => (rendered[scenario] as RenderedManifest[]).map((m) => m.doc as Obj);
const find = (scenario: string, kind: string, name: string): Obj | undefined => docs(scenario).find((d) => d['kind'] === kind && d['metadata']?.name === name);
const get = (scenario: string, kind: string, name: string): Obj => {
  const found = find(scenario, kind, name);
  if (!found) throw new Error(`${scenario}: no ${kind} ${name}`);
  return found;
};

function validateWithKubernetesModels(manifests: Obj[]): Promise<{ kind: string; name: string; error: string | null }[]> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [join(__dirname, 'validate-k8s.mjs')], { cwd: join(__dirname, '..'), timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`validator failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as { kind: string; name: string; error: string | null }[]);
    });
    child.stdin?.end(JSON.stringify(manifests));
  });
}

describe('rendered chart', () => {
  it('with default values makes exactly the objects of the design', () => {
    // By hand: a ConfigMap, Deployment and Service per service and for the collector,
    // an HPA for segmenter and reliability, and the artifact-store claim (TLS is off: no Secret).
    const names = ['purify-agent', 'purify-otel-collector', 'purify-reliability', 'purify-segmenter', 'purify-trainer'];
    const expected = [
      ...names.map((n) => `ConfigMap/${n}`),
      ...names.map((n) => `Deployment/${n}`),
      'HorizontalPodAutoscaler/purify-reliability',
      'HorizontalPodAutoscaler/purify-segmenter',
      'PersistentVolumeClaim/purify-artifacts',
      ...names.map((n) => `Service/${n}`),
    ];
    expect(docs('defaults').map((d) => `${d['kind']}/${d['metadata'].name}`).sort()).toEqual(expected.sort());
  });

  it('validates every manifest of every value set against the Kubernetes schemas (kubernetes-models)', async () => {
    const all = Object.entries(rendered).flatMap(([scenario, manifests]) => manifests.map((m) => ({ ...m.doc, metadata: { ...(m.doc['metadata'] as Obj), annotations: { ...((m.doc['metadata'] as Obj)['annotations'] ?? {}), 'test/scenario': scenario } } })));
    const results = await validateWithKubernetesModels(all);
    expect(results).toHaveLength(all.length);
    expect(results.filter((r) => r.error !== null)).toEqual([]);
    // The validator does reject a broken manifest (so the check above can fail).
    const broken = { ...get('defaults', 'Deployment', 'purify-segmenter'), spec: { ...get('defaults', 'Deployment', 'purify-segmenter')['spec'], replicas: 'two' } };
    const [refused] = await validateWithKubernetesModels([broken]);
    expect(refused?.error).toMatch(/replicas must be integer/);
  });

  it.each(Object.keys(SCENARIOS))('%s: every Deployment has probes, resources and a non-root, locked-down security context', (scenario) => {
    const deployments = docs(scenario).filter((d) => d['kind'] === 'Deployment');
    expect(deployments.length).toBeGreaterThan(0);
    for (const d of deployments) {
      const pod = d['spec'].template.spec as Obj;
      expect([d['metadata'].name, pod['securityContext'].runAsNonRoot]).toEqual([d['metadata'].name, true]);
      expect(pod['securityContext'].runAsUser).toBeGreaterThan(0);
      expect(pod['automountServiceAccountToken']).toBe(false);
      for (const c of pod['containers'] as Obj[]) {
        const where = `${d['metadata'].name}/${c['name']}`;
        expect([where, Boolean(c['readinessProbe']), Boolean(c['livenessProbe'])]).toEqual([where, true, true]);
        expect([where, Object.keys(c['resources'].requests ?? {}).sort()]).toEqual([where, ['cpu', 'memory']]);
        expect([where, Object.keys(c['resources'].limits ?? {}).includes('memory')]).toEqual([where, true]);
        expect([where, c['securityContext'].allowPrivilegeEscalation, c['securityContext'].readOnlyRootFilesystem, c['securityContext'].capabilities]).toEqual([where, false, true, { drop: ['ALL'] }]);
      }
    }
  });

  it('probes each service with Kubernetes’ native gRPC probe on its own port (plaintext)', () => {
    for (const name of SERVICES) {
      const container = get('defaults', 'Deployment', `purify-${name}`)['spec'].template.spec.containers[0] as Obj;
      // Ports are the runtime's defaults (DEFAULT_PORTS), independently of values.yaml.
      expect(container['ports']).toEqual([
        { name: 'grpc', containerPort: DEFAULT_PORTS[name], protocol: 'TCP' },
        { name: 'metrics', containerPort: 9464, protocol: 'TCP' },
      ]);
      for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
        expect([name, probe, container[probe].grpc]).toEqual([name, probe, { port: DEFAULT_PORTS[name] }]);
      }
      expect(container['image']).toBe(`registry.example.com/purify/purify-${name}:0.1.0`);
    }
  });

  it('makes the Services clients balance over headless, and points every *_ADDRESSES at a Service port', () => {
    // [service, headless]
    const expectedHeadless: [(typeof SERVICES)[number], boolean][] = [['segmenter', true], ['reliability', true], ['agent', true], ['trainer', false]];
    for (const [name, headless] of expectedHeadless) {
      const svc = get('defaults', 'Service', `purify-${name}`)['spec'] as Obj;
      expect([name, svc['clusterIP'] === 'None']).toEqual([name, headless]);
      expect(svc['ports'][0]).toEqual({ name: 'grpc', port: DEFAULT_PORTS[name], targetPort: 'grpc', protocol: 'TCP', appProtocol: 'grpc' });
    }
    // Every Service selects the pods of exactly one Deployment.
    for (const svc of docs('defaults').filter((d) => d['kind'] === 'Service')) {
      const selector = svc['spec'].selector as Obj;
      const matching = docs('defaults').filter((d) => d['kind'] === 'Deployment' && Object.entries(selector).every(([k, v]) => d['spec'].template.metadata.labels[k] === v));
      expect([svc['metadata'].name, matching.map((d) => d['metadata'].name)]).toEqual([svc['metadata'].name, [svc['metadata'].name]]);
    }
    // The callers' addresses, by hand from the architecture: reliability → segmenter; trainer → segmenter, reliability, agent.
    const addresses = docs('defaults')
      .filter((d) => d['kind'] === 'ConfigMap')
      .flatMap((d) => Object.entries(d['data'] as Record<string, string>).filter(([k]) => k.endsWith('_ADDRESSES')));
    expect(addresses.sort()).toEqual([
      ['PURIFY_RELIABILITY_SEGMENTER_ADDRESSES', 'purify-segmenter:50151'],
      ['PURIFY_TRAINER_AGENT_ADDRESSES', 'purify-agent:50153'],
      ['PURIFY_TRAINER_RELIABILITY_ADDRESSES', 'purify-reliability:50152'],
      ['PURIFY_TRAINER_SEGMENTER_ADDRESSES', 'purify-segmenter:50151'],
    ]);
  });

  it('scales segmenter and reliability with an HPA on CPU, and leaves their replica count to it', () => {
    for (const name of ['segmenter', 'reliability']) {
      const hpa = get('defaults', 'HorizontalPodAutoscaler', `purify-${name}`)['spec'] as Obj;
      expect(hpa['scaleTargetRef']).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: `purify-${name}` });
      expect(hpa['metrics']).toEqual([{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } }]);
      expect(get('defaults', 'Deployment', `purify-${name}`)['spec'].replicas).toBeUndefined();
    }
    expect(get('defaults', 'Deployment', 'purify-agent')['spec'].replicas).toBe(2);
    // HPA off → the Deployment carries replicas again.
    expect(find('existingClaimNoHpa', 'HorizontalPodAutoscaler', 'purify-segmenter')).toBeUndefined();
    expect(get('existingClaimNoHpa', 'Deployment', 'purify-segmenter')['spec'].replicas).toBe(2);
  });

  it('requests GPUs and schedules onto GPU nodes only when asked, for segmenter and trainer', () => {
    const container = (scenario: string, name: string) => get(scenario, 'Deployment', `purify-${name}`)['spec'].template.spec.containers[0] as Obj;
    const pod = (scenario: string, name: string) => get(scenario, 'Deployment', `purify-${name}`)['spec'].template.spec as Obj;
    // Off by default: no GPU resource, selector or toleration anywhere.
    for (const name of SERVICES) {
      expect([name, container('defaults', name)['resources'].limits['nvidia.com/gpu']]).toEqual([name, undefined]);
      expect([name, pod('defaults', name)['nodeSelector'], pod('defaults', name)['tolerations']]).toEqual([name, undefined, undefined]);
    }
    // [service, expected GPU limit, expected nodeSelector]
    const expected: [string, number, Obj][] = [
      ['segmenter', 1, { 'nvidia.com/gpu.present': 'true' }],
      ['trainer', 2, { 'nvidia.com/gpu.present': 'true', pool: 'train' }],
    ];
    for (const [name, gpus, nodeSelector] of expected) {
      expect([name, container('gpu', name)['resources'].limits]).toEqual([name, { ...(name === 'segmenter' ? { cpu: '4', memory: '8Gi' } : { cpu: '8', memory: '16Gi' }), 'nvidia.com/gpu': gpus }]);
      expect([name, pod('gpu', name)['nodeSelector']]).toEqual([name, nodeSelector]);
      expect([name, pod('gpu', name)['tolerations']]).toEqual([name, [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]]);
    }
    expect(container('gpu', 'reliability')['resources'].limits['nvidia.com/gpu']).toBeUndefined();
  });

  it('mounts the ReadWriteMany artifact store into segmenter, agent and trainer only', () => {
    const pvc = get('defaults', 'PersistentVolumeClaim', 'purify-artifacts')['spec'] as Obj;
    expect(pvc['accessModes']).toEqual(['ReadWriteMany']);
    expect(pvc['resources']).toEqual({ requests: { storage: '50Gi' } });
    // [service, scenario, expected claim (undefined = not mounted)]
    const cases: [string, string, string | undefined][] = [
      ['segmenter', 'defaults', 'purify-artifacts'],
      ['agent', 'defaults', 'purify-artifacts'],
      ['trainer', 'defaults', 'purify-artifacts'],
      ['reliability', 'defaults', undefined],
      ['segmenter', 'existingClaimNoHpa', 'shared-rwx'],
    ];
    for (const [name, scenario, claim] of cases) {
      const podSpec = get(scenario, 'Deployment', `purify-${name}`)['spec'].template.spec as Obj;
      const volume = (podSpec['volumes'] as Obj[]).find((v) => v['name'] === 'artifacts');
      expect([name, scenario, volume?.['persistentVolumeClaim']?.claimName]).toEqual([name, scenario, claim]);
      const env = get(scenario, 'ConfigMap', `purify-${name}`)['data'] as Record<string, string>;
      expect([name, env[`PURIFY_${name.toUpperCase()}_ARTIFACTS_DIR`]]).toEqual([name, claim ? '/var/lib/purify/artifacts' : undefined]);
    }
    expect(find('existingClaimNoHpa', 'PersistentVolumeClaim', 'purify-artifacts')).toBeUndefined();
    const demo = (get('noPersistenceNoCollector', 'Deployment', 'purify-agent')['spec'].template.spec.volumes as Obj[]).find((v) => v['name'] === 'artifacts');
    expect(demo).toEqual({ name: 'artifacts', emptyDir: {} });
  });

  it('wires every service to the OpenTelemetry collector, which is deployed with its config', () => {
    const collectorService = get('defaults', 'Service', 'purify-otel-collector')['spec'] as Obj;
    expect((collectorService['ports'] as Obj[]).map((p) => p['port'])).toEqual([4317, 4318]);
    for (const name of SERVICES) {
      const env = get('defaults', 'ConfigMap', `purify-${name}`)['data'] as Record<string, string>;
      expect([name, env['OTEL_EXPORTER_OTLP_ENDPOINT'], env['OTEL_EXPORTER_OTLP_PROTOCOL'], env['OTEL_TRACES_EXPORTER'], env['OTEL_SERVICE_NAME']]).toEqual([
        name,
        'http://purify-otel-collector:4318',
        'http/protobuf',
        'otlp',
        `purify-${name}`,
      ]);
      const container = get('defaults', 'Deployment', `purify-${name}`)['spec'].template.spec.containers[0] as Obj;
      expect(container['envFrom']).toEqual([{ configMapRef: { name: `purify-${name}` } }]);
    }
    const config = get('defaults', 'ConfigMap', 'purify-otel-collector')['data']['config.yaml'] as string;
    expect(config).toContain('otlp:');
    expect(config).toContain('endpoint: 0.0.0.0:4318');
    // Without the collector, the endpoint given in values is used.
    expect(find('noPersistenceNoCollector', 'Deployment', 'purify-otel-collector')).toBeUndefined();
    expect(get('noPersistenceNoCollector', 'ConfigMap', 'purify-segmenter')['data']['OTEL_EXPORTER_OTLP_ENDPOINT']).toBe('http://otel.monitoring:4318');
  });

  it('with TLS: a Secret from the PEMs, the TLS settings of server and client, and probes through the image’s probe script', () => {
    const secret = get('mtlsInline', 'Secret', 'purify-tls');
    expect(secret['type']).toBe('kubernetes.io/tls');
    expect(secret['data']).toEqual({
      'tls.crt': Buffer.from(PEM.cert).toString('base64'),
      'tls.key': Buffer.from(PEM.key).toString('base64'),
      'ca.crt': Buffer.from(PEM.ca).toString('base64'),
    });
    const env = get('mtlsInline', 'ConfigMap', 'purify-reliability')['data'] as Record<string, string>;
    expect(Object.fromEntries(Object.entries(env).filter(([k]) => k.includes('TLS')))).toEqual({
      PURIFY_RELIABILITY_TLS_CERT: '/etc/purify/tls/tls.crt',
      PURIFY_RELIABILITY_TLS_KEY: '/etc/purify/tls/tls.key',
      PURIFY_RELIABILITY_TLS_CA: '/etc/purify/tls/ca.crt',
      PURIFY_RELIABILITY_CLIENT_TLS_CA: '/etc/purify/tls/ca.crt',
      PURIFY_RELIABILITY_CLIENT_TLS_CERT: '/etc/purify/tls/tls.crt',
      PURIFY_RELIABILITY_CLIENT_TLS_KEY: '/etc/purify/tls/tls.key',
    });
    const podSpec = get('mtlsInline', 'Deployment', 'purify-reliability')['spec'].template.spec as Obj;
    expect((podSpec['volumes'] as Obj[]).find((v) => v['name'] === 'tls')).toEqual({ name: 'tls', secret: { secretName: 'purify-tls', defaultMode: 0o440 } });
    expect(podSpec['containers'][0].readinessProbe.exec).toEqual({ command: ['node', 'libs/runtime/dist/healthcheck.js', 'reliability'] });
    // One-way TLS from an existing Secret: no client certificates, no Secret rendered.
    expect(find('tlsExistingSecret', 'Secret', 'purify-tls')).toBeUndefined();
    const oneWay = get('tlsExistingSecret', 'ConfigMap', 'purify-trainer')['data'] as Record<string, string>;
    expect(Object.keys(oneWay).filter((k) => k.includes('TLS')).sort()).toEqual(['PURIFY_TRAINER_CLIENT_TLS_CA', 'PURIFY_TRAINER_TLS_CERT', 'PURIFY_TRAINER_TLS_KEY']);
    expect((get('tlsExistingSecret', 'Deployment', 'purify-trainer')['spec'].template.spec.volumes as Obj[]).find((v) => v['name'] === 'tls')?.['secret'].secretName).toBe('purify-certs');
  });

  it('refuses TLS without certificate material, naming the value', () => {
    expect(() => renderChart(CHART, { values: { tls: { enabled: true } } })).toThrow(
      new TemplateError('templates/secret-tls.yaml:11: tls.cert (PEM) is required when tls.enabled is true and tls.existingSecret is empty'),
    );
  });

  it('names everything after the release and leaves disabled services out', () => {
    expect(docs('otherRelease').every((d) => String(d['metadata'].name).startsWith('prod-'))).toBe(true);
    expect(get('otherRelease', 'ConfigMap', 'prod-trainer')['data']['PURIFY_TRAINER_SEGMENTER_ADDRESSES']).toBe('prod-segmenter:50151');
    expect(docs('withoutTrainer').filter((d) => String(d['metadata'].name) === 'purify-trainer')).toEqual([]);
  });
});
