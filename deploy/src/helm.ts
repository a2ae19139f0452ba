import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { TemplateSet } from './gotemplate';

/**
 * Renders a Helm chart the way `helm template` does, for tests on a machine
 * without helm: values.yaml deep-merged with overrides, every
 * `templates/*.yaml` rendered with `.Values`, `.Release`, `.Chart`,
 * `.Capabilities` and `.Template`, `_*.tpl` files providing `define`s, and the
 * output split into YAML documents (empty ones dropped).
 *
 * What a real `helm template` does differently:
 * - it has all of sprig (~100 functions) and `tpl`, `lookup`, `.Files`; we
 *   have the ones in `FUNCTIONS` (a template using another fails here);
 * - it reads values through sigs.k8s.io/yaml, so every number is a float64
 *   (we do the same, see `formatFloat`), and YAML 1.1 words like `yes`/`on`
 *   in values.yaml stay strings here but become booleans there (the chart quotes them);
 * - `toYaml` goes through JSON, so map keys come out sorted (we sort too) and
 *   strings may be quoted differently (same YAML value);
 * - it validates against the cluster's OpenAPI (with `--validate`), sorts the
 *   manifests by kind for installation, and adds `# Source:` comments;
 * - `.Capabilities` comes from the cluster (here: Kubernetes v1.30, no extra APIs);
 * - `values.schema.json` is enforced (the chart has none; tests check values instead).
 */

export interface RenderOptions {
  /** Values merged over values.yaml (maps merge, other values replace, null deletes). */
  readonly values?: Record<string, unknown>;
  readonly releaseName?: string;
  readonly namespace?: string;
}

export interface RenderedManifest {
  /** Template file it came from, e.g. `templates/deployment.yaml`. */
  readonly source: string;
  readonly doc: Record<string, unknown>;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Helm's coalescing of values: overrides win; maps merge recursively; `null` removes a default. */
export function mergeValues(base: Record<string, unknown>, overrides: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === null) delete out[key];
    else if (isMap(value) && isMap(out[key])) out[key] = mergeValues(out[key], value);
    else out[key] = value;
  }
  return out;
}

/** Chart.yaml keys as Helm exposes them under `.Chart` (capitalised: `name` → `Name`). */
function chartObject(chart: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(chart).map(([k, v]) => [k.charAt(0).toUpperCase() + k.slice(1), v]));
}

export function loadChart(chartDir: string): { chart: Record<string, unknown>; values: Record<string, unknown>; templates: Map<string, string> } {
  const chart = parseYaml(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;
  const values = (parseYaml(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) ?? {}) as Record<string, unknown>;
  const templates = new Map<string, string>();
  for (const file of readdirSync(join(chartDir, 'templates')).sort()) {
    if (/\.(ya?ml|tpl)$/.test(file)) templates.set(`templates/${file}`, readFileSync(join(chartDir, 'templates', file), 'utf8'));
  }
  return { chart, values, templates };
}

/** Renders every manifest of the chart in `chartDir`. Throws TemplateError or a YAML error naming the template. */
export function renderChart(chartDir: string, options: RenderOptions = {}): RenderedManifest[] {
  const { chart, values, templates } = loadChart(chartDir);
  const set = new TemplateSet();
  for (const [name, source] of templates) set.add(name, source);
  const chartName = String(chart['name']);
  const manifests: RenderedManifest[] = [];
  for (const name of templates.keys()) {
    if (basename(name).startsWith('_') || name.endsWith('.tpl')) continue;
    const root = {
      Values: mergeValues(values, options.values ?? {}),
      Release: { Name: options.releaseName ?? 'purify', Namespace: options.namespace ?? 'default', Service: 'Helm', IsInstall: true, IsUpgrade: false, Revision: 1 },
      Chart: chartObject(chart),
      Capabilities: { KubeVersion: { Version: 'v1.30.0', Major: '1', Minor: '30' }, APIVersions: [] },
      Template: { Name: `${chartName}/${name}`, BasePath: `${chartName}/templates` },
    };
    const text = set.render(name, root);
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length > 0) throw new Error(`${name}: rendered YAML is invalid: ${doc.errors[0]?.message ?? ''}\n${text}`);
      const value = doc.toJS() as unknown;
      if (value === null || value === undefined) continue;
      if (!isMap(value)) throw new Error(`${name}: a rendered document must be a map, got ${JSON.stringify(value)}`);
      manifests.push({ source: name, doc: value });
    }
  }
  return manifests;
}
