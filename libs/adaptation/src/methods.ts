/**
 * The adaptation methods: ours (`rl`), the ablation `rule`, and the baselines of
 * DESIGN.md §4. Every method runs through the same loop (same backbone,
 * schedule and data); they differ only in where the target supervision and its
 * weights come from.
 */

export const Method = {
  SourceOnly: 'source-only',
  Naive: 'naive',
  Confidence: 'confidence',
  Entropy: 'entropy',
  Consensus: 'consensus',
  /** Class-balanced self-training (CBST): the per-class curriculum gate alone, no reliability, no agent. */
  Cbst: 'cbst',
  Rule: 'rule',
  Rl: 'rl',
  Oracle: 'oracle',
} as const;
export type Method = (typeof Method)[keyof typeof Method];

export const METHODS: readonly Method[] = Object.freeze(Object.values(Method));

/** Where a method's target supervision comes from. */
export const TargetSource = {
  /** No target term. */
  None: 'none',
  /** The teacher's whole-image probabilities (pseudo-label = argmax) from the inference port. */
  Teacher: 'teacher',
  /** The reliability port (pseudo-label, region features and scores). */
  Reliability: 'reliability',
  /** Target training labels (the oracle only). */
  OracleLabels: 'oracle-labels',
} as const;
export type TargetSource = (typeof TargetSource)[keyof typeof TargetSource];

const SOURCES: Readonly<Record<Method, TargetSource>> = {
  'source-only': TargetSource.None,
  naive: TargetSource.Teacher,
  confidence: TargetSource.Teacher,
  entropy: TargetSource.Teacher,
  consensus: TargetSource.Teacher,
  cbst: TargetSource.Teacher,
  rule: TargetSource.Reliability,
  rl: TargetSource.Reliability,
  oracle: TargetSource.OracleLabels,
};

export function targetSourceOf(method: Method): TargetSource {
  return SOURCES[method];
}

export function isMethod(value: unknown): value is Method {
  return typeof value === 'string' && (METHODS as readonly string[]).includes(value);
}
