import { execFileSync } from 'node:child_process';
import { assignArm, routingUniform, type WeightedArm } from './routing';

/**
 * Independent oracle: the same definition written in Python (hashlib + math),
 * run through Debian's python3.
 */
function pythonAssign(salt: string, arms: readonly WeightedArm[], keys: readonly string[]): { u: number[]; arm: number[] } {
  const script = `
import hashlib, json, math, sys
req = json.load(sys.stdin)
def u(arm, key):
    d = hashlib.sha256((req["salt"] + "\\0" + arm + "\\0" + key).encode()).digest()
    return ((int.from_bytes(d[:8], "big") >> 12) + 0.5) / 2**52
out = {"u": [u(req["arms"][0]["name"], k) for k in req["keys"]], "arm": []}
for k in req["keys"]:
    best, score = -1, -math.inf
    for i, a in enumerate(req["arms"]):
        if a["weight"] <= 0: continue
        s = math.log(u(a["name"], k)) / a["weight"]
        if s > score: best, score = i, s
    out["arm"].append(best)
print(json.dumps(out))
`;
  return JSON.parse(execFileSync('/usr/bin/python3', ['-c', script], { input: JSON.stringify({ salt, arms, keys }) }).toString()) as { u: number[]; arm: number[] };
}

const keys = (n: number, prefix = 'case-'): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('routing', () => {
  it.each([
    // [case, salt, arms]: the assignment of 300 keys must equal the Python oracle's, key for key.
    ['two arms 70/30', 'salt-a', [{ name: 'control', weight: 0.7 }, { name: 'treatment', weight: 0.3 }]],
    ['three arms 50/30/20', '9f2c', [{ name: 'a', weight: 0.5 }, { name: 'b', weight: 0.3 }, { name: 'c', weight: 0.2 }]],
    ['a zero-weight arm never wins', 's', [{ name: 'a', weight: 0 }, { name: 'b', weight: 1 }]],
  ])('matches an independent Python implementation: %s', (_name, salt, arms) => {
    const ks = keys(300);
    const oracle = pythonAssign(salt, arms, ks);
    expect(ks.map((k) => routingUniform(salt, (arms[0] as WeightedArm).name, k))).toEqual(oracle.u);
    expect(ks.map((k) => assignArm(salt, arms, k))).toEqual(oracle.arm);
  });

  it('honours a 70/30 split over 10 000 keys within 4 binomial standard deviations', () => {
    // σ of the observed share = sqrt(0.7 · 0.3 / 10 000) = 0.00458; 4σ = 0.0183 (two-sided p ≈ 6e-5).
    const arms = [{ name: 'control', weight: 0.7 }, { name: 'treatment', weight: 0.3 }];
    const share = keys(10_000).filter((k) => assignArm('exp-salt', arms, k) === 0).length / 10_000;
    expect(Math.abs(share - 0.7)).toBeLessThan(4 * Math.sqrt((0.7 * 0.3) / 10_000));
  });

  it('moves only |Δw| of the keys, all towards the arm that gained, when weights change from 70/30 to 50/50', () => {
    const before = [{ name: 'control', weight: 0.7 }, { name: 'treatment', weight: 0.3 }];
    const after = [{ name: 'control', weight: 0.5 }, { name: 'treatment', weight: 0.5 }];
    const ks = keys(10_000);
    const moves = ks.map((k) => [assignArm('s1', before, k), assignArm('s1', after, k)]);
    // No key may move from treatment (1) to control (0).
    expect(moves.filter(([a, b]) => a === 1 && b === 0)).toHaveLength(0);
    // Expected moved share 0.2; σ = sqrt(0.2 · 0.8 / 10 000) = 0.004, tolerance 4σ.
    const moved = moves.filter(([a, b]) => a === 0 && b === 1).length / 10_000;
    expect(Math.abs(moved - 0.2)).toBeLessThan(4 * Math.sqrt((0.2 * 0.8) / 10_000));
  });

  it('does not depend on the order of the arms', () => {
    const arms = [{ name: 'a', weight: 0.2 }, { name: 'b', weight: 0.5 }, { name: 'c', weight: 0.3 }];
    const reversed = [...arms].reverse();
    for (const k of keys(500)) {
      expect(reversed[assignArm('x', reversed, k)]?.name).toBe(arms[assignArm('x', arms, k)]?.name);
    }
  });

  it('gives -1 when no arm has a positive weight', () => {
    expect(assignArm('x', [{ name: 'a', weight: 0 }], 'k')).toBe(-1);
  });
});
