import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  AgentServiceService,
  JobEvent,
  PROTO_FILES,
  PROTO_ROOT,
  ReliabilityServiceService,
  SegmenterServiceService,
  SERVICE_NAMES,
  TrainerServiceService,
  VolumeHeader,
} from './index';

describe('@purify/proto', () => {
  it('PROTO_FILES lists exactly the .proto files on disk', () => {
    const onDisk = readdirSync(join(PROTO_ROOT, 'purify', 'v1')).filter((f) => f.endsWith('.proto')).map((f) => `purify/v1/${f}`);
    expect([...PROTO_FILES].sort()).toEqual(onDisk.sort());
  });

  it.each([
    // [kind, generated definition] — every method path lives under the service's full name
    ['segmenter', SegmenterServiceService],
    ['reliability', ReliabilityServiceService],
    ['agent', AgentServiceService],
    ['trainer', TrainerServiceService],
  ] as const)('%s definition matches SERVICE_NAMES and has GetInfo', (kind, definition) => {
    const paths = Object.values(definition).map((m: { path: string }) => m.path);
    expect(paths.every((p) => p.startsWith(`/${SERVICE_NAMES[kind]}/`))).toBe(true);
    expect(paths).toContain(`/${SERVICE_NAMES[kind]}/GetInfo`);
  });

  it('encodes a volume header to the protobuf wire format by hand-checked bytes', () => {
    // field 1 (shape_zyx, packed uint32): tag 0x0a, length 3, values 1, 2, 3
    const bytes = VolumeHeader.encode(VolumeHeader.fromPartial({ shapeZyx: [1, 2, 3] })).finish();
    expect(Array.from(bytes)).toEqual([0x0a, 0x03, 0x01, 0x02, 0x03]);
  });

  it('keeps 64-bit sequence numbers as plain numbers (forceLong=number)', () => {
    const event = JobEvent.decode(JobEvent.encode(JobEvent.fromPartial({ jobId: 'j', sequence: 2 ** 40 + 1 })).finish());
    expect(event.sequence).toBe(2 ** 40 + 1);
  });
});
