/**
 * The one error type of `@purify/reliability`. `field` names the input the
 * caller got wrong (e.g. `config.stride`), so a service can report it under the
 * name its clients see; services map it to INVALID_ARGUMENT.
 */
export class ReliabilityError extends Error {
  override readonly name = 'ReliabilityError';

  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** `"<field>" must …, got <value>` — the house style of validation messages. */
export function invalidInput(field: string, expected: string, received: unknown): ReliabilityError {
  const shown = Array.isArray(received) ? `[${received.join(', ')}]` : typeof received === 'string' ? JSON.stringify(received) : String(received);
  return new ReliabilityError(field, `\`${field}\` ${expected}, got ${shown}`);
}
