import { RlError } from './errors';

/** Asserts that `fn` throws an {@link RlError} with exactly `message`. */
export function expectRlError(fn: () => unknown, message: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(RlError);
  expect((caught as Error).message).toBe(message);
}
