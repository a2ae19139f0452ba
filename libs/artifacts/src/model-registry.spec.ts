import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelRegistry, RegistryError } from './model-registry';

const meta = {
  classes: [
    { index: 0, name: 'background' },
    { index: 1, name: 'liver' },
  ],
  inputChannels: 1,
  inputSizeYx: [96, 96] as const,
  normalization: { kind: 'ct-window' as const, lowHu: -200, highHu: 300 },
  onnx: { input: 'image', output: 'probabilities', opset: 17 },
  provenance: { job: 'test' },
  metrics: [],
};

describe('ModelRegistry', () => {
  const root = mkdtempSync(join(tmpdir(), 'registry-'));
  const registry = new ModelRegistry(root);

  it('publishes consecutive versions, resolves latest, and records the ONNX hash', () => {
    const onnx = new Uint8Array([1, 2, 3]);
    const v1 = registry.publish('source-ct', { onnx, weights: new Uint8Array([9]) }, meta);
    const v2 = registry.publish('source-ct', { onnx: new Uint8Array([4]) }, meta);
    expect([v1.meta.version, v2.meta.version]).toEqual([1, 2]);
    expect(v1.meta.onnx.sha256).toBe(createHash('sha256').update(Buffer.from([1, 2, 3])).digest('hex'));
    expect(registry.get('source-ct').meta.version).toBe(2);
    expect(registry.get('source-ct', 1).meta.version).toBe(1);
    expect(registry.names()).toEqual(['source-ct']);
    expect(readdirSync(join(root, 'models', 'source-ct')).sort()).toEqual(['1', '2']); // no staging left
  });

  it.each([
    // [case, action, kind, message]
    ['unknown model', () => registry.get('nope'), 'not-found', `model "nope" is not in the registry at ${join(root, 'models')}`],
    ['unknown version', () => registry.get('source-ct', 7), 'not-found', 'model "source-ct" has no version 7 (versions: 1, 2)'],
    ['path-like name', () => registry.get('../x'), 'invalid', 'model name must match [A-Za-z0-9][A-Za-z0-9._-]* (at most 128 characters), got "../x"'],
  ])('refuses %s', (_name, action, kind, message) => {
    let caught: unknown;
    try {
      action();
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(RegistryError);
    expect(caught).toMatchObject({ kind, message });
  });

  it('reports a version folder with a missing model.onnx or a corrupt meta.json', () => {
    const v = registry.publish('broken', { onnx: new Uint8Array([1]) }, meta);
    rmSync(join(v.dir, 'model.onnx'));
    expect(() => registry.get('broken', 1)).toThrow(`model broken:1 is missing model.onnx in ${v.dir}`);
    const w = registry.publish('broken', { onnx: new Uint8Array([1]) }, meta);
    writeFileSync(join(w.dir, 'meta.json'), '{"name": ');
    expect(() => registry.get('broken', 2)).toThrow(/^model broken:2 has an unreadable meta.json: /);
    expect(JSON.parse(readFileSync(join(registry.get('source-ct', 1).dir, 'meta.json'), 'utf8')).name).toBe('source-ct');
  });
});
