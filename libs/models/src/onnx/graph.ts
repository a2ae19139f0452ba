import { onnx } from 'onnx-proto';

/** An attribute value, tagged with its ONNX type (ints and floats cannot be told apart from a JS number). */
export type Attr =
  | { readonly int: number }
  | { readonly ints: readonly number[] }
  | { readonly float: number }
  | { readonly floats: readonly number[] }
  | { readonly string: string };

const { AttributeType } = onnx.AttributeProto;

function attribute(name: string, value: Attr): onnx.IAttributeProto {
  if ('int' in value) return { name, type: AttributeType.INT, i: value.int };
  if ('ints' in value) return { name, type: AttributeType.INTS, ints: [...value.ints] };
  if ('float' in value) return { name, type: AttributeType.FLOAT, f: value.float };
  if ('floats' in value) return { name, type: AttributeType.FLOATS, floats: [...value.floats] };
  return { name, type: AttributeType.STRING, s: Buffer.from(value.string, 'utf8') };
}

/** A graph input or output: float32 with fixed (number) or symbolic (string) dimensions. */
export interface FloatTensorInfo {
  readonly name: string;
  readonly dims: readonly (number | string)[];
  readonly doc?: string;
}

function valueInfo(t: FloatTensorInfo): onnx.IValueInfoProto {
  return {
    name: t.name,
    docString: t.doc ?? '',
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: t.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** Little-endian bytes of a float32 array (ONNX `raw_data` is always little-endian). */
function float32Bytes(values: Float32Array): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return out;
}

/**
 * Accumulates ONNX nodes and float32 initialisers, then serialises a
 * `ModelProto` (one graph, default domain only).
 */
export class OnnxGraphBuilder {
  private readonly nodes: onnx.INodeProto[] = [];
  private readonly initializers: onnx.ITensorProto[] = [];
  private readonly names = new Set<string>();

  /** A constant float32 tensor (weights, scales); returns its name. */
  addInitializer(name: string, dims: readonly number[], values: Float32Array): string {
    const size = dims.reduce((a, b) => a * b, 1);
    if (size !== values.length) throw new Error(`initializer '${name}': dims [${dims.join(', ')}] hold ${size} values, got ${values.length}`);
    this.claim(name);
    this.initializers.push({ name, dims: [...dims], dataType: onnx.TensorProto.DataType.FLOAT, rawData: float32Bytes(values) });
    return name;
  }

  /** One node; an empty string in `inputs` is an omitted optional input. */
  addNode(opType: string, name: string, inputs: readonly string[], outputs: readonly string[], attrs: Readonly<Record<string, Attr>> = {}): void {
    for (const o of outputs) this.claim(o);
    this.nodes.push({
      opType,
      name,
      domain: '',
      input: [...inputs],
      output: [...outputs],
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
  }

  /** Renames a node output (and every use of it), e.g. to give the graph output its public name. */
  renameTensor(from: string, to: string): void {
    this.claim(to);
    for (const n of this.nodes) {
      n.output = (n.output ?? []).map((o) => (o === from ? to : o));
      n.input = (n.input ?? []).map((i) => (i === from ? to : i));
    }
    this.names.delete(from);
  }

  /** Whether some node produces `tensor`. */
  produces(tensor: string): boolean {
    return this.nodes.some((n) => (n.output ?? []).includes(tensor));
  }

  encode(spec: {
    graphName: string;
    inputs: readonly FloatTensorInfo[];
    outputs: readonly FloatTensorInfo[];
    irVersion: number;
    opsetVersion: number;
    producerName: string;
    producerVersion: string;
    docString?: string;
    metadata?: Readonly<Record<string, string>>;
  }): Uint8Array {
    const model: onnx.IModelProto = {
      irVersion: spec.irVersion,
      opsetImport: [{ domain: '', version: spec.opsetVersion }],
      producerName: spec.producerName,
      producerVersion: spec.producerVersion,
      docString: spec.docString ?? '',
      graph: {
        name: spec.graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: spec.inputs.map(valueInfo),
        output: spec.outputs.map(valueInfo),
      },
      metadataProps: Object.entries(spec.metadata ?? {}).map(([key, value]) => ({ key, value })),
    };
    return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
  }

  private claim(name: string): void {
    if (this.names.has(name)) throw new Error(`ONNX tensor name '${name}' is used twice`);
    this.names.add(name);
  }
}
