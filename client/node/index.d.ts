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
  /** Elements per chunk; 0 lets the server choose. */
  chunkElements?: number;
  deadlineSeconds?: number;
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
}

export function toTensorSpec(spec: TensorSpec): Record<string, unknown>;
export function typedValues(data: Buffer, dtype: DType): TensorValues;
export function serverAddress(target: string): string;
export function loadPackage(protoDir?: string): any;
export const PROTO_DIR: string;
export const DEFAULT_PORT: number;
export { grpc };
