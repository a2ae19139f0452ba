/**
 * A minimal reader of the top level of an ONNX `ModelProto` (protobuf wire
 * format): IR version, producer, opset imports and `metadata_props`. The graph
 * (field 7) is skipped without being decoded. onnxruntime-node does not expose
 * a model's custom metadata, and the size multiple of a U-Net lives there
 * (`purify.size_multiple`, see docs/models.md), so we read it ourselves instead
 * of pulling in a full ONNX schema package.
 *
 * Field numbers (onnx.proto3): ModelProto.ir_version = 1 (int64),
 * producer_name = 2 (string), graph = 7, opset_import = 8 (OperatorSetIdProto:
 * domain = 1, version = 2), metadata_props = 14 (StringStringEntryProto: key = 1,
 * value = 2).
 */

export interface OnnxModelHeader {
  readonly irVersion: number;
  readonly producerName: string;
  /** Operator sets by domain ('' = the default ONNX domain). */
  readonly opsets: Readonly<Record<string, number>>;
  readonly metadata: Readonly<Record<string, string>>;
  /** True when a graph field is present. */
  readonly hasGraph: boolean;
}

export class OnnxFormatError extends Error {
  override readonly name = 'OnnxFormatError';
}

const WIRE = { varint: 0, fixed64: 1, bytes: 2, fixed32: 5 } as const;

class Reader {
  pos = 0;
  constructor(
    readonly bytes: Uint8Array,
    readonly end = bytes.length,
    start = 0,
  ) {
    this.pos = start;
  }

  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new OnnxFormatError(`truncated varint at byte ${this.pos}`);
      const b = this.bytes[this.pos++] as number;
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return result;
      scale *= 128;
    }
    throw new OnnxFormatError(`varint longer than 10 bytes at byte ${this.pos}`);
  }

  /** Returns [start, end) of a length-delimited field's payload and moves past it. */
  span(): [number, number] {
    const length = this.varint();
    const start = this.pos;
    if (start + length > this.end) throw new OnnxFormatError(`field of ${length} bytes at byte ${start} runs past the end (${this.end})`);
    this.pos += length;
    return [start, start + length];
  }

  skip(wireType: number): void {
    switch (wireType) {
      case WIRE.varint:
        this.varint();
        return;
      case WIRE.fixed64:
        this.advance(8);
        return;
      case WIRE.bytes:
        this.span();
        return;
      case WIRE.fixed32:
        this.advance(4);
        return;
      default:
        throw new OnnxFormatError(`unsupported protobuf wire type ${wireType} at byte ${this.pos}`);
    }
  }

  private advance(n: number): void {
    if (this.pos + n > this.end) throw new OnnxFormatError(`truncated fixed-width field at byte ${this.pos}`);
    this.pos += n;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** Reads the pairs of a two-field submessage (string key = 1, string/int value = 2). */
function pair(bytes: Uint8Array, [start, end]: [number, number]): { key: string; value: string; intValue: number } {
  const r = new Reader(bytes, end, start);
  let key = '';
  let value = '';
  let intValue = 0;
  while (r.pos < end) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (field === 1 && wire === WIRE.bytes) {
      const [s, e] = r.span();
      key = utf8.decode(bytes.subarray(s, e));
    } else if (field === 2 && wire === WIRE.bytes) {
      const [s, e] = r.span();
      value = utf8.decode(bytes.subarray(s, e));
    } else if (field === 2 && wire === WIRE.varint) {
      intValue = r.varint();
    } else {
      r.skip(wire);
    }
  }
  return { key, value, intValue };
}

/** Parses the top-level header of an ONNX model; throws {@link OnnxFormatError} on malformed bytes. */
export function readOnnxHeader(bytes: Uint8Array): OnnxModelHeader {
  const r = new Reader(bytes);
  let irVersion = 0;
  let producerName = '';
  let hasGraph = false;
  const opsets: Record<string, number> = {};
  const metadata: Record<string, string> = {};
  while (r.pos < bytes.length) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (field === 0) throw new OnnxFormatError(`invalid field number 0 at byte ${r.pos}`);
    if (field === 1 && wire === WIRE.varint) irVersion = r.varint();
    else if (field === 2 && wire === WIRE.bytes) {
      const [s, e] = r.span();
      producerName = utf8.decode(bytes.subarray(s, e));
    } else if (field === 7 && wire === WIRE.bytes) {
      r.span();
      hasGraph = true;
    } else if (field === 8 && wire === WIRE.bytes) {
      const p = pair(bytes, r.span());
      opsets[p.key] = p.intValue;
    } else if (field === 14 && wire === WIRE.bytes) {
      const p = pair(bytes, r.span());
      metadata[p.key] = p.value;
    } else r.skip(wire);
  }
  if (!hasGraph) throw new OnnxFormatError('no graph (ModelProto field 7)');
  return { irVersion, producerName, opsets, metadata, hasGraph };
}
