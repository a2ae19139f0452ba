import { DicomError } from '../src/errors';

/** Asserts that `p` rejects with a DicomError of `kind` and exactly `message` (the cause is not compared). */
export async function expectRejection(p: Promise<unknown>, kind: string, message: string): Promise<DicomError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DicomError);
  expect({ kind: (err as DicomError).kind, message: (err as DicomError).message }).toEqual({ kind, message });
  return err as DicomError;
}
