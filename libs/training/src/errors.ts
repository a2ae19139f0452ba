/**
 * Errors of the training library. Each message starts with the file, case or field
 * it is about, then says what was expected and what was received.
 */

/** Bad training data: a missing file, a dataset without labels, classes that do not match. */
export class TrainingDataError extends Error {
  override readonly name = 'TrainingDataError';
}

/** A bad option value (validated once at the edge). */
export class TrainingConfigError extends Error {
  override readonly name = 'TrainingConfigError';
}
