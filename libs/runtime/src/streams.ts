import type { DataChunk } from '@purify/proto';
import type { CallContext, MessageReader } from './handlers';
import { invalid } from './validate';

/** A streamed request: one `setup` message, then the payload as chunks. */
export interface SetupOrChunk<S> {
  payload?: { $case: 'setup'; setup: S } | { $case: 'chunk'; chunk: DataChunk } | undefined;
}

/** Reads the first message of a setup-then-chunks stream; it must be the setup. */
export async function readSetup<S>(requests: MessageReader<SetupOrChunk<S>>, ctx: CallContext): Promise<S> {
  const message = await requests.next(ctx.signal);
  if (message === undefined) throw invalid('payload', 'must contain a `setup` message', 'an empty stream');
  if (message.payload?.$case !== 'setup') {
    throw invalid('payload', 'must start with a `setup` message before any `chunk`', message.payload?.$case);
  }
  return message.payload.setup;
}
