import { Backend, selectBackend, type BackendChoice } from '@purify/models';

/**
 * The backend this library prefers when it owns the process (e.g. the agent
 * service): see docs/rl.md for the measurement behind the choice. The policy
 * code itself runs on whatever TensorFlow.js backend is active, so a process
 * that also trains U-Nets (the trainer) keeps its own choice; results are
 * bit-reproducible per backend, not across backends.
 */
export const RL_DEFAULT_BACKEND: Backend = Backend.Wasm;

/** Activates `requested` (default {@link RL_DEFAULT_BACKEND}) through @purify/models and reports the choice. */
export async function selectRlBackend(requested: Backend | 'auto' = RL_DEFAULT_BACKEND): Promise<BackendChoice> {
  return selectBackend(requested);
}
