/**
 * Errors of the adaptation library. Each message names the field, file or case
 * it is about, then says what was expected and what was received.
 */

/** A bad option or job setting (validated once at the edge). */
export class AdaptationConfigError extends Error {
  override readonly name = 'AdaptationConfigError';
  /** The option the message is about, as the caller spells it (e.g. `hyperparameters.rounds`). */
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.field = field;
  }
}

/** Bad data: a missing dataset, classes that do not match, a forbidden read. */
export class AdaptationDataError extends Error {
  override readonly name = 'AdaptationDataError';
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.field = field;
  }
}

/** A read outside the paths the job may read (the target-label barrier; see `data.ts`). */
export class ForbiddenReadError extends Error {
  override readonly name = 'ForbiddenReadError';
}
