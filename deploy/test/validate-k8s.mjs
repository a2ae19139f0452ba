// Validates Kubernetes manifests against the Kubernetes OpenAPI schemas with
// kubernetes-models, in this plain-Node helper that helm.spec.ts runs in a child
// process: kubernetes-models 5 is ES-module only (jest runs CommonJS). We pin 4.x,
// which ships both, because 5 requires Node >= 22; the helper works with either.
// Reads a JSON array of manifests on stdin; prints a JSON array of
// { kind, name, error } (error null when valid).
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const manifests = JSON.parse(Buffer.concat(chunks).toString('utf8'));
const results = [];
for (const doc of manifests) {
  const name = doc?.metadata?.name ?? null;
  const [group, version] = String(doc.apiVersion).includes('/') ? String(doc.apiVersion).split('/') : [null, String(doc.apiVersion)];
  const path = group ? `kubernetes-models/${group}/${version}/${doc.kind}` : `kubernetes-models/${version}/${doc.kind}`;
  let error = null;
  try {
    const module = await import(path);
    const Model = module[doc.kind];
    if (typeof Model !== 'function') throw new Error(`kubernetes-models has no model ${path}`);
    // The typed object (apiVersion/kind filled in by the model), validated against the schema.
    new Model(doc).validate();
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
  }
  results.push({ kind: doc.kind, name, error });
}
process.stdout.write(JSON.stringify(results));
