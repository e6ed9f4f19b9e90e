// Type declarations of weightinit-client (index.js).
import * as grpc from '@grpc/grpc-js';

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16';
export type Layout = 'torch' | 'keras' | 'axes';
/** Hash of a stream's digest (DigestAlgorithm on the wire). BLAKE3 is the default where its native binding
 * (@napi-rs/blake-hash) is installed, because it is the faster to verify: 4.6 GB/s on one core of the 2-core build
 * machine against 1.8 GB/s for node:crypto's SHA-256 (WASM and pure-JS BLAKE3s did 0.05-0.8 GB/s there). */
export type DigestName = 'sha256' | 'blake3';

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
  /** Algorithm of the stream's digest: 'DIGEST_ALGORITHM_SHA256' | 'DIGEST_ALGORITHM_BLAKE3'
   * ('DIGEST_ALGORITHM_UNSPECIFIED' from servers older than the field: SHA-256). */
  digest_algorithm: string;
}

/** float32 -> Float32Array, float64 -> Float64Array, float16/bfloat16 -> Uint16Array of the bits. */
export type TensorValues = Float32Array | Float64Array | Uint16Array;

export interface GenerateResult {
  header: TensorHeader;
  dtype: DType;
  shape: number[];
  /** Raw little-endian bytes, row-major (the digest covers exactly these). */
  data: Buffer;
  /** The elements, over the same memory as `data` on little-endian hosts. */
  values: TensorValues;
  /** Hex digest the server sent, checked against the bytes received, in `digestAlgorithm`. */
  digest: string;
  /** The algorithm the stream's header named (what was asked for; 'sha256' from a server older than the field). */
  digestAlgorithm: DigestName;
  /** Hex SHA-256 (equal to `digest`), present only when `digestAlgorithm` is 'sha256': ask for
   * `digest: 'sha256'` where code reads this property. */
  sha256?: string;
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
  /** Digest to ask for on this call (default: the client's `digest`). */
  digest?: DigestName;
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
  /** `target`: "host:port" (port 50051 when omitted). `digest`: what generate() and generateModel() ask for
   * (default: defaultDigest()); another value, or 'blake3' without its binding, throws a SpecError naming `digest`.
   * Every tensor is checked in the algorithm its stream's header names. */
  constructor(target: string,
    options?: { credentials?: grpc.ChannelCredentials; protoDir?: string; digest?: DigestName });
  readonly target: string;
  readonly digest: DigestName;
  close(): void;
  capabilities(options?: { deadlineSeconds?: number }): Promise<Record<string, unknown>>;
  generate(spec: TensorSpec, options?: GenerateOptions): Promise<GenerateResult>;
  generateModel(manifest: ModelManifest,
    options?: { chunkElements?: number; deadlineSeconds?: number; digest?: DigestName }): Promise<ModelTensor[]>;
}

export function toTensorSpec(spec: TensorSpec): Record<string, unknown>;
export function toModelManifest(manifest: ModelManifest): Record<string, unknown>;
export function toRegion(index: [number | null, number | null][], shape: number[]): { start: string; stop: string }[];
export function typedValues(data: Buffer, dtype: DType): TensorValues;
export function serverAddress(target: string): string;
/** 'blake3' where @napi-rs/blake-hash's native binding loads (the faster to verify), else 'sha256'. */
export function defaultDigest(): DigestName;
/** Digest names -> DigestAlgorithm enum value names. */
export const DIGEST_ALGORITHMS: Record<DigestName, string>;
export function loadPackage(protoDir?: string): any;
export const PROTO_DIR: string;
export const DEFAULT_PORT: number;
export { grpc };
