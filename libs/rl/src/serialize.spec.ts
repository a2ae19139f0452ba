import * as vm from 'node:vm';
import * as tf from '@tensorflow/tfjs';
import { selectRlBackend } from './backend';
import { DEFAULT_PPO_CONFIG } from './config';
import { bandit, rollout } from './envs.test-util';
import { expectRlError } from './expect.test-util';
import { python } from './oracle.test-util';
import { createPolicy, deserializePolicy } from './policy';
import { Rng } from './rng';
import { crc32, decodePolicyFile, encodePolicyFile, POLICY_FORMAT_VERSION } from './serialize';
import type { Policy, PolicySpec } from './types';

const SPEC: PolicySpec = { actionSpace: 'beta', weightLevels: [], hiddenUnits: [8], numFeatures: 4, seed: 5 };
const DISCRETE: PolicySpec = { actionSpace: 'discrete', weightLevels: [0, 0.5, 1], hiddenUnits: [8, 8], numFeatures: 4, seed: 6 };

/** A policy that has been trained once (non-trivial normaliser and weights). */
function trained(spec: PolicySpec): Policy {
  const initial = createPolicy(spec);
  const data = rollout(bandit, initial, 64, Rng.fromSeed(1, 'data'), false).trajectories;
  const { policy } = initial.update(data, { ...DEFAULT_PPO_CONFIG, epochs: 2, minibatchSize: 32 });
  initial.dispose();
  return policy;
}

beforeAll(async () => {
  await selectRlBackend();
});

describe('serialize → deserializePolicy', () => {
  it.each([
    ['beta', SPEC],
    ['discrete', DISCRETE],
  ])('%s: the copy acts identically (deterministic and sampled), evaluates identically and re-serializes to the same bytes', (_name, spec) => {
    const original = trained(spec);
    const bytes = original.serialize();
    const copy = deserializePolicy(bytes, spec);
    expect(copy.spec).toEqual(spec);
    const obs = bandit.observe(0, 25, [], Rng.fromSeed(2, 'obs'));
    expect(copy.act(obs, 25, { deterministic: true })).toEqual(original.act(obs, 25, { deterministic: true }));
    // The generator state travels with the policy, so the next samples agree too.
    const sampled = original.act(obs, 25, { deterministic: false });
    expect(copy.act(obs, 25, { deterministic: false })).toEqual(sampled);
    expect(copy.evaluate(obs, 25, sampled.actions)).toEqual(original.evaluate(obs, 25, sampled.actions));
    expect(Buffer.from(copy.serialize()).equals(Buffer.from(original.serialize()))).toBe(true);
    original.dispose();
    copy.dispose();
  });

  it('the CRC-32 is the standard one (python zlib.crc32)', () => {
    const data = new TextEncoder().encode('purify RL policy ✓');
    expect(crc32(data)).toBe(python<number>(`import json, zlib; print(json.dumps(zlib.crc32(bytes(${JSON.stringify(Array.from(data))}))))`));
  });

  it('accepts bytes from another realm (a Buffer, or a Uint8Array made in a vm context)', () => {
    const p = createPolicy(DISCRETE);
    const bytes = p.serialize();
    const foreign = vm.runInNewContext('(src) => Uint8Array.from(src)')(bytes) as Uint8Array;
    expect(foreign instanceof Uint8Array).toBe(false);
    for (const input of [foreign, Buffer.from(bytes)]) {
      const copy = deserializePolicy(input);
      expect(Buffer.from(copy.serialize()).equals(Buffer.from(bytes))).toBe(true);
      copy.dispose();
    }
    expectRlError(() => deserializePolicy(new Float32Array(8) as unknown as Uint8Array), 'policy bytes must be a Uint8Array, got [object Float32Array]');
    p.dispose();
  });

  it('deserialize leaves no extra tensors once disposed', () => {
    const p = createPolicy(DISCRETE);
    const bytes = p.serialize();
    const before = tf.memory().numTensors;
    deserializePolicy(bytes).dispose();
    expect(tf.memory().numTensors).toBe(before);
    p.dispose();
  });
});

describe('deserializePolicy refuses bad bytes', () => {
  let good: Uint8Array;
  beforeAll(() => {
    const p = createPolicy(DISCRETE);
    good = p.serialize();
    p.dispose();
  });
  const patched = (edit: (b: Uint8Array, v: DataView) => void): Uint8Array => {
    const b = good.slice();
    edit(b, new DataView(b.buffer));
    return b;
  };
  /** Re-encodes the file with an edited header (so the checksum is valid and the meaning is checked). */
  const reheadered = (edit: (h: Record<string, unknown>) => void): Uint8Array => {
    const file = decodePolicyFile(good);
    const header = JSON.parse(JSON.stringify(file.header)) as Record<string, unknown> & { tensors: { name: string; shape: number[] }[] };
    edit(header);
    return encodePolicyFile({ header, data: file.data });
  };

  it.each([
    // [case, bytes, expected message]
    ['too short', () => good.slice(0, 10), 'policy bytes are too short: need at least 20 bytes, got 10'],
    ['wrong magic', () => new TextEncoder().encode('{"not": "a policy", "padding": 1}'), 'policy bytes do not start with the magic "PURIFYRL", got "{\\"not\\": ": not a purify RL policy'],
    ['a future version', () => patched((_, v) => v.setUint32(8, 2, true)), `policy format version 2 is not supported; this build reads version ${POLICY_FORMAT_VERSION}`],
    ['a header length past the end', () => patched((_, v) => v.setUint32(12, 1e6, true)), `policy header length 1000000 runs past the end of the ${0} bytes: the bytes are truncated or corrupt`],
    ['one flipped bit in the weights', () => patched((b) => (b[b.length - 3]! ^= 0x10)), 'CHECKSUM'],
    ['truncated weights', () => good.slice(0, good.length - 4), 'CHECKSUM'],
  ])('%s', (_name, bytes, message) => {
    const input = bytes();
    let expected = message.replace('of the 0 bytes', `of the ${input.length} bytes`);
    if (message === 'CHECKSUM') {
      const v = new DataView(input.buffer, input.byteOffset);
      expected = `policy checksum mismatch: stored CRC-32 ${v.getUint32(16, true).toString(16).padStart(8, '0')}, computed ${crc32(input.subarray(20)).toString(16).padStart(8, '0')}: the bytes are corrupt`;
    }
    expectRlError(() => deserializePolicy(input), expected);
  });

  it.each([
    ['an expected spec that differs', () => deserializePolicy(good, { numFeatures: 5 }), 'policy spec mismatch: spec.numFeatures is 4, expected 5'],
    ['an expected action space that differs', () => deserializePolicy(good, { actionSpace: 'beta' }), 'policy spec mismatch: spec.actionSpace is "discrete", expected "beta"'],
    [
      'tensors that do not fit the spec',
      () => deserializePolicy(reheadered((h) => ((h.spec as { hiddenUnits: number[] }).hiddenUnits = [8, 9]))),
      'policy tensors do not match the spec: stored trunk.0.kernel[4, 8], trunk.0.bias[8], trunk.1.kernel[8, 8], trunk.1.bias[8], actor.kernel[8, 3], actor.bias[3], critic.kernel[8, 1], critic.bias[1]; the spec implies trunk.0.kernel[4, 8], trunk.0.bias[8], trunk.1.kernel[8, 9], trunk.1.bias[9], actor.kernel[9, 3], actor.bias[3], critic.kernel[9, 1], critic.bias[1]',
    ],
    [
      'an invalid stored spec',
      () => deserializePolicy(reheadered((h) => ((h.spec as { numFeatures: number }).numFeatures = 0))),
      'policy header holds an invalid spec: PolicySpec.numFeatures must be an integer >= 1, got 0',
    ],
    [
      'a normaliser of the wrong width',
      () => deserializePolicy(reheadered((h) => (h.normalizer = { count: 3, mean: [0, 0], m2: [1, 1] }))),
      'policy header.normalizer must hold count and 4 finite mean and m2 values, got {"count":3,"mean":[0,0],"m2":[1,1]}',
    ],
    ['a bad generator state', () => deserializePolicy(reheadered((h) => (h.rng = [1, 2, 3]))), 'policy header.rng must be 4 uint32 words, got [1, 2, 3]'],
    ['another format', () => deserializePolicy(reheadered((h) => (h.format = 'onnx'))), 'policy header.format must be "purify-rl-policy", got "onnx"'],
  ])('%s', (_name, call, message) => {
    expectRlError(call, message);
  });
});
