// Type declarations of weightinit-client (index.js).
import * as grpc from '@grpc/grpc-js';

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16';
export type Layout = 'torch' | 'keras' | 'axes';

/** The engine's spec, as in Python (`weightinit.spec_from_dict`). uint64 seeds may be decimal strings. */
export interface TensorSpec {
  scheme: string;
  shape: number[];
  dtype?: DType;
  seed?: number | string;
  name?: string;
  params?: Record<string, number | string | number[]>;
  layout?: Layout;
  in_axis?: number;
  out_axis?: number;
  batch_axis?: number[];
  stream?: number | string;
  /** Rows (indices along dim 0) set to 0 after the scheme, e.g. nn.Embedding's padding row. */
  zero_rows?: number[];
  /** Post-multiplier applied to the float64 values before rounding (docs/rng.md). */
  scale?: number;
}

/** weightinit.v1.TensorHeader (int64/uint64 fields as decimal strings). */
export interface TensorHeader {
  name: string;
  shape: string[];
  dtype: string;
  element_count: string;
  start: string;
  stop: string;
  byte_count: string;
  item_size: number;
  algorithm_version: number;
  seed: string;
  stream: string;
  hash_from: string;
  backend: string;
  resolved_spec_json: string;
  /** The N-d region this stream holds, one [start, stop) per dimension, when one was asked for. */
  region?: { start: string; stop: string }[];
}

/** float32 -> Float32Array, float64 -> Float64Array, float16/bfloat16 -> Uint16Array of the bits. */
export type TensorValues = Float32Array | Float64Array | Uint16Array;

export interface GenerateResult {
  header: TensorHeader;
  dtype: DType;
  shape: number[];
  /** Raw little-endian bytes, row-major (the SHA-256 covers exactly these). */
  data: Buffer;
  /** The elements, over the same memory as `data` on little-endian hosts. */
  values: TensorValues;
  /** Hex SHA-256, checked against the bytes received. */
  sha256: string;
}

export interface GenerateOptions {
  /** First flat element (default 0). */
  start?: number;
  /** One past the last flat element (default: all). */
  stop?: number;
  /** An N-d region instead: one [start, stop] pair per leading dimension (null ends: the dimension's ends;
   * negative values count from the end). Exclusive with start/stop. */
  index?: [number | null, number | null][];
  /** Elements per chunk; 0 lets the server choose. */
  chunkElements?: number;
  deadlineSeconds?: number;
}

/** A model manifest; with `recipe` (a built-in name or a recipe object, docs/recipes.md) the tensors need only
 * name, shape and dtype, and the server expands the recipe. */
export interface ModelManifest {
  name?: string;
  seed?: number | string;
  recipe?: string | Record<string, unknown>;
  tensors: (TensorSpec | { name: string; shape: number[]; dtype?: DType })[];
}

export interface ModelTensor extends GenerateResult {
  /** The server's resolved spec (with a recipe: the expanded one). */
  spec: Record<string, unknown>;
}

export class WeightinitError extends Error {}
export class SpecError extends WeightinitError {
  /** The engine's field path, e.g. "params.std". */
  field: string;
  description: string;
  /** gRPC status name when the server reported it. */
  code?: string;
  /** The request's field path, e.g. "spec.normal.std". */
  violationField?: string;
}
export class LimitError extends SpecError {}
export class ServiceError extends WeightinitError {
  code: string;
  details: string;
}
export class UnavailableError extends ServiceError {}
export class IntegrityError extends WeightinitError {}

export class WeightinitClient {
  /** `target`: "host:port" (port 50051 when omitted). */
  constructor(target: string, options?: { credentials?: grpc.ChannelCredentials; protoDir?: string });
  readonly target: string;
  close(): void;
  capabilities(options?: { deadlineSeconds?: number }): Promise<Record<string, unknown>>;
  generate(spec: TensorSpec, options?: GenerateOptions): Promise<GenerateResult>;
  generateModel(manifest: ModelManifest, options?: { chunkElements?: number; deadlineSeconds?: number }):
    Promise<ModelTensor[]>;
}

export function toTensorSpec(spec: TensorSpec): Record<string, unknown>;
export function toModelManifest(manifest: ModelManifest): Record<string, unknown>;
export function toRegion(index: [number | null, number | null][], shape: number[]): { start: string; stop: string }[];
export function typedValues(data: Buffer, dtype: DType): TensorValues;
export function serverAddress(target: string): string;
export function loadPackage(protoDir?: string): any;
export const PROTO_DIR: string;
export const DEFAULT_PORT: number;
export { grpc };
