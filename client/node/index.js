'use strict';
// Node.js client of the weightinit gRPC service (weightinit.v1.InitializerService).
// It loads the .proto files shipped in this package (./protos, kept identical to the repository's
// protos/ by a test), requests a tensor, reassembles the chunks into one Buffer (raw little-endian
// bytes, row-major), checks the digest the server sends last (BLAKE3 or SHA-256, as the stream's header
// names), and gives the values as a typed array too: Float32Array (float32), Float64Array (float64),
// Uint16Array of the bits (float16, bfloat16).

const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_DIR = path.join(__dirname, 'protos');
const PROTO_FILE = 'weightinit/v1/initializer_service.proto';
const DEFAULT_PORT = 50051;

const DTYPES = { float32: 'DATA_TYPE_FP32', float64: 'DATA_TYPE_FP64', float16: 'DATA_TYPE_FP16', bfloat16: 'DATA_TYPE_BF16',
  complex64: 'DATA_TYPE_COMPLEX64', complex128: 'DATA_TYPE_COMPLEX128' };
const DTYPE_NAMES = Object.fromEntries(Object.entries(DTYPES).map(([name, proto]) => [proto, name]));
// complex64 / complex128: interleaved (real, imaginary) parts
const TYPED_ARRAYS = { float32: Float32Array, float64: Float64Array, float16: Uint16Array, bfloat16: Uint16Array,
  complex64: Float32Array, complex128: Float64Array };
// String-valued scheme parameters are enums on the wire: engine value -> enum value name.
const ENUM_PARAMS = { mode: 'FAN_MODE_', nonlinearity: 'NONLINEARITY_', distribution: 'DISTRIBUTION_', bounds: 'TRUNCATION_BOUNDS_' };
// Digest algorithms by the name the `digest` option takes -> DigestAlgorithm value, and how messages spell them.
const DIGEST_ALGORITHMS = { sha256: 'DIGEST_ALGORITHM_SHA256', blake3: 'DIGEST_ALGORITHM_BLAKE3' };
const DIGEST_TITLES = { sha256: 'SHA-256', blake3: 'BLAKE3' };
// A header's DigestAlgorithm -> name; UNSPECIFIED comes from servers older than the field, which hash with SHA-256.
const HEADER_DIGESTS = { DIGEST_ALGORITHM_UNSPECIFIED: 'sha256', ...Object.fromEntries(
  Object.entries(DIGEST_ALGORITHMS).map(([name, value]) => [value, name])) };

let cachedPackage = null;

function loadPackage(protoDir = PROTO_DIR) {
  if (cachedPackage && protoDir === PROTO_DIR) return cachedPackage;
  const definition = protoLoader.loadSync(PROTO_FILE, {
    includeDirs: [protoDir], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition).weightinit.v1;
  if (protoDir === PROTO_DIR) cachedPackage = pkg;
  return pkg;
}

// The error family, named as in Python's weightinit.errors.
class WeightinitError extends Error {
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

// An invalid spec field: `field` is the engine's path (params.std), `violationField` the request's
// (spec.normal.std) when the server reported it.
class SpecError extends WeightinitError {
  constructor(field, message, { code, violationField } = {}) {
    super(`${field}: ${message}`);
    this.field = field;
    this.description = message;
    this.code = code;
    this.violationField = violationField;
  }
}

// Valid, but over a server limit (RESOURCE_EXHAUSTED).
class LimitError extends SpecError {}

// Any other failed call: `code` is the gRPC status name, `details` its message.
class ServiceError extends WeightinitError {
  constructor(code, details) {
    super(`${code}: ${details}`);
    this.code = code;
    this.details = details;
  }
}

// The server could not be reached (UNAVAILABLE).
class UnavailableError extends ServiceError {}

// The received bytes do not match the server's digest, or the stream broke its own rules.
class IntegrityError extends WeightinitError {}

// BLAKE3 comes from the native binding of @napi-rs/blake-hash: measured on one core of the 2-core build machine,
// it hashes 4.6 GB/s where node:crypto's SHA-256 does 1.8 GB/s and the WASM / pure-JS BLAKE3s 0.05-0.8 GB/s.
// null where no binding is installed for this platform (then SHA-256 only).
let blake3Binding;
function blake3Module() {
  if (blake3Binding === undefined) {
    try {
      blake3Binding = require('@napi-rs/blake-hash');
    } catch {
      blake3Binding = null;
    }
  }
  return blake3Binding;
}

// What clients ask for when not told: BLAKE3 where its binding loads (the faster to check), else SHA-256.
function defaultDigest() {
  return blake3Module() ? 'blake3' : 'sha256';
}

// The `digest` option ('sha256' | 'blake3') -> the same name; anything else is a SpecError naming `digest`.
function digestOption(name) {
  if (typeof name !== 'string' || !Object.hasOwn(DIGEST_ALGORITHMS, name)) {
    throw new SpecError('digest', `unknown digest algorithm ${JSON.stringify(name)}; choose one of `
      + `${Object.keys(DIGEST_ALGORITHMS).join(', ')}`);
  }
  if (name === 'blake3' && !blake3Module()) {
    throw new SpecError('digest', `BLAKE3 needs the native binding of @napi-rs/blake-hash, not installed for `
      + `${process.platform}-${process.arch}; use digest: 'sha256'`);
  }
  return name;
}

// A fresh incremental hash of `algorithm`: update(bytes), digest() -> Buffer.
function createHasher(algorithm) {
  if (algorithm === 'sha256') return crypto.createHash('sha256');
  const hasher = new (blake3Module().Blake3Hasher)();
  return { update: (bytes) => hasher.update(bytes), digest: () => hasher.digestBuffer() };
}

// The algorithm a stream's header names -> its name; one this client does not know (or cannot compute) is an
// IntegrityError: the stream's digest could not be checked.
function headerDigest(header) {
  // absent: protos from before the field
  const name = HEADER_DIGESTS[header.digest_algorithm ?? 'DIGEST_ALGORITHM_UNSPECIFIED'];
  if (!name || (name === 'blake3' && !blake3Module())) {
    throw new IntegrityError(`the server hashes ${JSON.stringify(header.name)} with digest algorithm `
      + `${header.digest_algorithm}, which this client ${name ? 'has no binding for' : 'does not know'}`);
  }
  return name;
}

const STATUS_NAMES = Object.fromEntries(Object.entries(grpc.status).map(([name, code]) => [code, name]));

// spec.normal.std -> params.std; spec.shape -> shape (the Python client's engine paths).
function engineField(requestField, scheme) {
  let rest = requestField.startsWith('spec.') ? requestField.slice(5) : requestField;
  if (scheme && (rest === scheme || rest.startsWith(`${scheme}.`))) rest = `params${rest.slice(scheme.length)}`;
  return rest;
}

// A gRPC error -> the family. The server's message starts with the first violation's field path.
function fromGrpcError(error, scheme) {
  const name = STATUS_NAMES[error.code] || 'UNKNOWN';
  const details = error.details || error.message;
  if (error.code === grpc.status.INVALID_ARGUMENT || error.code === grpc.status.RESOURCE_EXHAUSTED) {
    const match = /^(\S+): (.*)$/s.exec(details);
    if (match && match[1] !== 'concurrent_streams') {
      const Kind = error.code === grpc.status.INVALID_ARGUMENT ? SpecError : LimitError;
      const result = new Kind(engineField(match[1], scheme), match[2], { code: name, violationField: match[1] });
      result.cause = error;
      return result;
    }
  }
  const Kind = (error.code === grpc.status.UNAVAILABLE || error.code === grpc.status.RESOURCE_EXHAUSTED)
    ? UnavailableError : ServiceError;
  const result = new Kind(name, details);
  result.cause = error;
  return result;
}

// "host", "host:port", "[::1]:port" -> "host:port" (the service's port 50051 when omitted).
function serverAddress(target) {
  const text = String(target).trim();
  if (text.includes('://') || text.startsWith('unix:')) return text;
  const match = /^(\[[^\]]+\]|[^:\[\]]+)(?::(\d+))?$/.exec(text);
  if (!match) throw new SpecError('target', `${JSON.stringify(text)} is not HOST[:PORT] (IPv6: [ADDR]:PORT)`);
  const port = match[2] === undefined ? DEFAULT_PORT : Number(match[2]);
  if (!(port >= 1 && port <= 65535)) throw new SpecError('target', `the port must be in 1..65535, got ${match[2]}`);
  return `${match[1]}:${port}`;
}

// An engine-style spec ({scheme, shape, dtype, seed, name, params, layout, ...}) -> TensorSpec message.
function toTensorSpec(spec) {
  if (!spec || typeof spec.scheme !== 'string') throw new SpecError('scheme', 'is required');
  if (!Array.isArray(spec.shape)) throw new SpecError('shape', 'must be a list of integers');
  const message = { name: spec.name || '', shape: spec.shape.map(String) };
  if (spec.dtype !== undefined) {
    if (!DTYPES[spec.dtype]) throw new SpecError('dtype', `must be one of ${Object.keys(DTYPES).join(', ')}`);
    message.dtype = DTYPES[spec.dtype];
  }
  if (spec.layout !== undefined) message.layout = `LAYOUT_${String(spec.layout).toUpperCase()}`;
  for (const key of ['seed', 'stream']) {
    if (spec[key] !== undefined && spec[key] !== null) message[key] = String(spec[key]);
  }
  // An axis list (JAX in_axis=(0, 1), possibly empty) travels in in_axes / out_axes.
  for (const [key, plural] of [['in_axis', 'in_axes'], ['out_axis', 'out_axes']]) {
    if (Array.isArray(spec[key])) message[plural] = { axes: spec[key].map(String) };
    else if (spec[key] !== undefined && spec[key] !== null) message[key] = String(spec[key]);
  }
  if (spec.batch_axis !== undefined && spec.batch_axis !== null) {
    message.batch_axis = (Array.isArray(spec.batch_axis) ? spec.batch_axis : [spec.batch_axis]).map(String);
  }
  if (spec.zero_rows) message.zero_rows = spec.zero_rows.map(String);
  if (spec.scale !== undefined && spec.scale !== null) message.scale = spec.scale;
  const params = {};
  for (const [key, value] of Object.entries(spec.params || {})) {
    if (value === null || value === undefined) continue;
    params[key] = ENUM_PARAMS[key] ? ENUM_PARAMS[key] + String(value).toUpperCase() : value;
  }
  message[spec.scheme] = params;
  return message;
}

// index: one [start, stop] pair per leading dimension (fewer than the rank: trailing dimensions whole;
// null/undefined ends are the dimension's ends; negative values count from the end) -> DimRange list.
function toRegion(index, shape) {
  if (!Array.isArray(index)) throw new SpecError('index', 'must be a list of [start, stop] pairs');
  if (index.length > shape.length) {
    throw new SpecError('index', `has ${index.length} entries for a tensor of rank ${shape.length}`);
  }
  return index.map((pair, d) => {
    const field = `index[${d}]`;
    if (!Array.isArray(pair) || pair.length !== 2) throw new SpecError(field, 'must be a [start, stop] pair');
    const size = Number(shape[d]);
    const [start, stop] = pair.map((value, end) => {
      if (value === null || value === undefined) return end === 0 ? 0 : size;
      if (!Number.isInteger(value)) throw new SpecError(field, `must hold integers, got ${value}`);
      return value < 0 ? value + size : value;
    });
    if (!(start >= 0 && start <= stop && stop <= size)) {
      throw new SpecError(field, `[${pair}] is not within a dimension of size ${size} with start <= stop`);
    }
    return { start: String(start), stop: String(stop) };
  });
}

// The elements of little-endian `data` as a typed array over the same memory (a copy on big-endian hosts).
function typedValues(data, dtype) {
  const Kind = TYPED_ARRAYS[dtype];
  if (!Kind) throw new SpecError('dtype', `unknown dtype ${dtype}`);
  const count = data.length / Kind.BYTES_PER_ELEMENT;
  if (os.endianness() === 'LE' && data.byteOffset % Kind.BYTES_PER_ELEMENT === 0) {
    return new Kind(data.buffer, data.byteOffset, count);
  }
  const values = new Kind(count);
  const view = new DataView(data.buffer, data.byteOffset, data.length);
  const read = { float32: (i) => view.getFloat32(i * 4, true), float64: (i) => view.getFloat64(i * 8, true) }[dtype]
    || ((i) => view.getUint16(i * 2, true));
  for (let i = 0; i < count; i += 1) values[i] = read(i);
  return values;
}

// The shape of what a call returns: the region's, the flat range's, or the whole tensor's.
function resultShape(header) {
  const full = header.shape.map(Number);
  const region = (header.region || []).map((range) => Number(range.stop) - Number(range.start));
  if (region.length) return region.concat(full.slice(region.length));
  const count = Number(header.stop) - Number(header.start);
  return count === Number(header.element_count) ? full : [count];
}

// A manifest {seed, name, tensors, recipe} -> ModelManifest message. With `recipe` (a built-in name or a
// recipe object, docs/recipes.md) the tensors are {name, shape, dtype?} and the server expands the recipe.
function toModelManifest(manifest) {
  if (!manifest || !Array.isArray(manifest.tensors)) throw new SpecError('manifest.tensors', 'must be a list');
  const message = { name: manifest.name || '', seed: String(manifest.seed || 0) };
  if (manifest.recipe !== undefined) {
    message.recipe_json = JSON.stringify(manifest.recipe);
    message.tensors = manifest.tensors.map((tensor, index) => {
      if (!Array.isArray(tensor.shape)) throw new SpecError(`manifest.tensors[${index}].shape`, 'must be a list');
      const spec = { name: tensor.name || '', shape: tensor.shape.map(String) };
      if (tensor.dtype !== undefined) spec.dtype = DTYPES[tensor.dtype];
      return spec;
    });
  } else {
    message.tensors = manifest.tensors.map(toTensorSpec);
  }
  return message;
}

// A streaming call whose promise fails once: stream.fail(error) cancels the call and rejects; a gRPC error
// rejects with toError(error). Handlers check stream.failed and ignore what arrives after a failure.
function watchStream(call, reject, toError) {
  const stream = { failed: false };
  stream.fail = (error) => {
    if (stream.failed) return;
    stream.failed = true;
    call.cancel();
    reject(error);
  };
  call.on('error', (error) => {
    if (stream.failed) return;
    stream.failed = true;
    reject(toError(error));
  });
  return stream;
}

// One tensor's stream as it arrives, checked as the Python client checks it: contiguous offsets from the
// header's start, whole elements, nothing past the announced count or after the digest, and at the digest
// every element received and the digest, in the algorithm the header names, equal to the server's. Each chunk
// is hashed as it arrives and copied once into `data`. The constructor throws an IntegrityError for a header
// naming an algorithm this client cannot check.
class TensorReceiver {
  constructor(header) {
    this.header = header;
    this.algorithm = headerDigest(header);
    this.data = Buffer.from(new ArrayBuffer(Number(header.byte_count)));  // aligned for the typed array
    this.next = Number(header.start);
    this.hash = createHasher(this.algorithm);
    this.digest = null;
  }

  // Takes one message's data (and digest); returns an IntegrityError, or null when all is well.
  accept(message) {
    const { header } = this;
    if (this.digest !== null) return new IntegrityError('data after the digest');
    const offset = Number(message.offset);
    if (offset !== this.next) return new IntegrityError(`expected element ${this.next}, got ${offset}`);
    const chunk = message.data;
    if (chunk.length % header.item_size) return new IntegrityError('chunk is not whole elements');
    const position = (offset - Number(header.start)) * header.item_size;
    if (position + chunk.length > this.data.length) return new IntegrityError('more data than announced');
    chunk.copy(this.data, position);
    this.hash.update(chunk);
    this.next = offset + chunk.length / header.item_size;
    // `digest` on the last message; servers older than the field send `sha256` only (SHA-256 then)
    const sent = message.digest && message.digest.length ? message.digest : message.sha256;
    if (!sent || !sent.length) return null;
    this.digest = Buffer.from(sent).toString('hex');
    if (this.next !== Number(header.stop)) return new IntegrityError(`${JSON.stringify(header.name)} ended early`);
    const received = this.hash.digest().toString('hex');
    if (received !== this.digest) {
      return new IntegrityError(`${DIGEST_TITLES[this.algorithm]} mismatch for ${JSON.stringify(header.name)}: `
        + `received ${received}, server sent ${this.digest}`);
    }
    return null;
  }

  // `sha256` too when the algorithm is SHA-256 (what callers from before the digest option read).
  result() {
    const dtype = DTYPE_NAMES[this.header.dtype];
    const result = { header: this.header, dtype, shape: resultShape(this.header), data: this.data,
      values: typedValues(this.data, dtype), digest: this.digest, digestAlgorithm: this.algorithm };
    if (this.algorithm === 'sha256') result.sha256 = this.digest;
    return result;
  }
}

class WeightinitClient {
  // target: "host:port" (port 50051 when omitted). digest: 'blake3' | 'sha256', what generate() and
  // generateModel() ask for unless a call says otherwise (default: defaultDigest()).
  constructor(target, { credentials = grpc.credentials.createInsecure(), protoDir = PROTO_DIR, digest } = {}) {
    const pkg = loadPackage(protoDir);
    this.target = serverAddress(target);
    this.digest = digest === undefined ? defaultDigest() : digestOption(digest);
    this.stub = new pkg.InitializerService(this.target, credentials, {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
    });
  }

  close() {
    this.stub.close();
  }

  capabilities({ deadlineSeconds = 30 } = {}) {
    return new Promise((resolve, reject) => {
      this.stub.GetCapabilities({}, { deadline: Date.now() + deadlineSeconds * 1000 }, (error, reply) => {
        if (error) reject(fromGrpcError(error)); else resolve(reply);
      });
    });
  }

  // Resolves to {header, dtype, shape, data: Buffer, values: typed array, digest: hex, digestAlgorithm,
  // sha256: hex when digestAlgorithm is 'sha256'}; rejects with SpecError/LimitError/UnavailableError/
  // ServiceError/IntegrityError. With index (N-d region, see toRegion) data holds the region row-major and
  // header.region echoes it; the digest covers what was sent (the range or region).
  generate(spec, { start, stop, index, chunkElements = 0, deadlineSeconds = 120, digest = this.digest } = {}) {
    let request;
    try {
      request = { spec: toTensorSpec(spec), chunk_elements: String(chunkElements),
        digest_algorithm: DIGEST_ALGORITHMS[digestOption(digest)] };
      if (index !== undefined) {
        if (start !== undefined || stop !== undefined) {
          throw new SpecError('index', 'give either an index (N-d region) or start/stop (flat range), not both');
        }
        request.region = toRegion(index, spec.shape);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    if (start !== undefined) request.start = String(start);
    if (stop !== undefined) request.stop = String(stop);
    return new Promise((resolve, reject) => {
      const call = this.stub.Generate(request, { deadline: Date.now() + deadlineSeconds * 1000 });
      const stream = watchStream(call, reject, (error) => fromGrpcError(error, spec.scheme));
      let receiver = null;
      call.on('data', (message) => {
        if (stream.failed) return;
        try {
          if (message.header) receiver = new TensorReceiver(message.header);
        } catch (error) {
          return stream.fail(error);
        }
        if (!receiver) return stream.fail(new IntegrityError('data before the header'));
        const problem = receiver.accept(message);
        if (problem) stream.fail(problem);
      });
      call.on('end', () => {
        if (stream.failed) return;
        if (!receiver || receiver.digest === null) return reject(new IntegrityError('stream ended before the digest'));
        resolve(receiver.result());
      });
    });
  }

  // Resolves to [{header, spec, dtype, shape, data: Buffer, values, digest: hex, digestAlgorithm, sha256?}] in
  // manifest order; `spec` is the server's resolved spec (header.resolved_spec_json: with a recipe, the
  // expanded one). Each tensor is checked as generate() checks it.
  // Rejects with the same error family as generate().
  generateModel(manifest, { chunkElements = 0, deadlineSeconds = 300, digest = this.digest } = {}) {
    let request;
    try {
      request = { manifest: toModelManifest(manifest), chunk_elements: String(chunkElements),
        digest_algorithm: DIGEST_ALGORITHMS[digestOption(digest)] };
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      const call = this.stub.GenerateModel(request, { deadline: Date.now() + deadlineSeconds * 1000 });
      const stream = watchStream(call, reject, (error) => fromGrpcError(error));
      const tensors = [];
      call.on('data', (message) => {
        if (stream.failed) return;
        const current = tensors[tensors.length - 1];
        if (message.header) {
          if (current && current.digest === null) {
            return stream.fail(new IntegrityError('tensor ended before its digest'));
          }
          try {
            tensors.push(new TensorReceiver(message.header));
          } catch (error) {
            return stream.fail(error);
          }
        }
        if (!tensors.length) return stream.fail(new IntegrityError('data before the header'));
        const problem = tensors[tensors.length - 1].accept(message);
        if (problem) stream.fail(problem);
      });
      call.on('end', () => {
        if (stream.failed) return;
        if (tensors.length !== request.manifest.tensors.length || tensors.some((t) => t.digest === null)) {
          return reject(new IntegrityError('the model stream ended early'));
        }
        resolve(tensors.map((tensor) => ({ ...tensor.result(), spec: JSON.parse(tensor.header.resolved_spec_json) })));
      });
    });
  }
}

module.exports = {
  WeightinitClient, WeightinitError, SpecError, LimitError, ServiceError, UnavailableError, IntegrityError,
  toTensorSpec, toModelManifest, toRegion, typedValues, serverAddress, loadPackage, defaultDigest, PROTO_DIR,
  DEFAULT_PORT, DIGEST_ALGORITHMS, grpc,
};
