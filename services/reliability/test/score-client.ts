/** Test helper: one Score call, collecting the result and the streamed maps. */
import type { ClientDuplexStream, ServiceError } from '@grpc/grpc-js';
import { DType, MapKind, type ReliabilityServiceClient, type ScoreRequest, type ScoreResponse, type ScoreResult, type ScoreSetup } from '@purify/proto';

export interface ScoreOutcome {
  readonly result: ScoreResult;
  /** float32 [z, y, x] per requested map kind. */
  readonly maps: Map<MapKind, Float32Array>;
}

export function header(shape: [number, number, number], spacing: [number, number, number] = [1, 1, 1]): NonNullable<ScoreSetup['image']> {
  return { shapeZyx: shape, spacingXyzMm: spacing, originLpsMm: [0, 0, 0], directionLps: [1, 0, 0, 0, 1, 0, 0, 0, 1], dtype: DType.DTYPE_FLOAT32, modality: 1, caseId: 'c' };
}

/** Sends setup + voxels (float32, `chunkBytes` per chunk) and resolves with the outcome or rejects with the ServiceError. */
export function score(client: ReliabilityServiceClient, setup: ScoreSetup, voxels: Float32Array | undefined, timeoutMs = 20_000, chunkBytes = 1000): Promise<ScoreOutcome> {
  return new Promise((resolve, reject) => {
    const call: ClientDuplexStream<ScoreRequest, ScoreResponse> = client.score({ deadline: Date.now() + timeoutMs });
    let result: ScoreResult | undefined;
    const parts = new Map<MapKind, Buffer[]>();
    call.on('data', (msg: ScoreResponse) => {
      if (msg.payload?.$case === 'result') result = msg.payload.result;
      else if (msg.payload?.$case === 'map') {
        const { kind, chunk } = msg.payload.map;
        const list = parts.get(kind) ?? [];
        expect(Number(chunk!.byteOffset)).toBe(list.reduce((a, b) => a + b.length, 0));
        list.push(chunk!.data);
        parts.set(kind, list);
      }
    });
    call.on('error', (err: ServiceError) => reject(err));
    call.on('end', () => {
      const maps = new Map<MapKind, Float32Array>();
      for (const [k, list] of parts) {
        const b = Buffer.concat(list);
        maps.set(k, new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));
      }
      if (result) resolve({ result, maps });
      else reject(new Error('stream ended without a result'));
    });
    call.write({ payload: { $case: 'setup', setup } });
    if (voxels) {
      const bytes = Buffer.from(voxels.buffer, voxels.byteOffset, voxels.byteLength);
      for (let o = 0; o < bytes.length; o += chunkBytes) call.write({ payload: { $case: 'chunk', chunk: { byteOffset: o, data: bytes.subarray(o, o + chunkBytes) } } });
    }
    call.end();
  });
}
