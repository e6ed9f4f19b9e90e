'use strict';
// Minimal Node.js client of the weightinit gRPC service (weightinit.v1.InitializerService).
// It loads the .proto files at run time, requests a tensor, reassembles the chunks into one
// Buffer (raw little-endian bytes, row-major) and checks the SHA-256 the server sends last.

const path = require('node:path');
const crypto = require('node:crypto');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_DIR = path.resolve(__dirname, '..', '..', 'protos');
const PROTO_FILE = 'weightinit/v1/initializer_service.proto';

const DTYPES = { float32: 'DATA_TYPE_FP32', float64: 'DATA_TYPE_FP64', float16: 'DATA_TYPE_FP16', bfloat16: 'DATA_TYPE_BF16',
  complex64: 'DATA_TYPE_COMPLEX64', complex128: 'DATA_TYPE_COMPLEX128' };
// String-valued scheme parameters are enums on the wire: engine value -> enum value name.
const ENUM_PARAMS = { mode: 'FAN_MODE_', nonlinearity: 'NONLINEARITY_', distribution: 'DISTRIBUTION_', bounds: 'TRUNCATION_BOUNDS_' };

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

class SpecError extends Error {
  constructor(field, message) {
    super(`${field}: ${message}`);
    this.field = field;
  }
}

class IntegrityError extends Error {}

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
  const params = {};
  for (const [key, value] of Object.entries(spec.params || {})) {
    if (value === null || value === undefined) continue;
    params[key] = ENUM_PARAMS[key] ? ENUM_PARAMS[key] + String(value).toUpperCase() : value;
  }
  message[spec.scheme] = params;
  return message;
}

class WeightinitClient {
  constructor(target, { credentials = grpc.credentials.createInsecure(), protoDir = PROTO_DIR } = {}) {
    const pkg = loadPackage(protoDir);
    this.stub = new pkg.InitializerService(target, credentials, {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
    });
  }

  close() {
    this.stub.close();
  }

  capabilities({ deadlineSeconds = 30 } = {}) {
    return new Promise((resolve, reject) => {
      this.stub.GetCapabilities({}, { deadline: Date.now() + deadlineSeconds * 1000 }, (error, reply) => {
        if (error) reject(error); else resolve(reply);
      });
    });
  }

  // Resolves to {header, data: Buffer, sha256: hex}; rejects on gRPC errors or a digest mismatch.
  generate(spec, { start, stop, chunkElements = 0, deadlineSeconds = 120 } = {}) {
    const request = { spec: toTensorSpec(spec), chunk_elements: String(chunkElements) };
    if (start !== undefined) request.start = String(start);
    if (stop !== undefined) request.stop = String(stop);
    return new Promise((resolve, reject) => {
      const call = this.stub.Generate(request, { deadline: Date.now() + deadlineSeconds * 1000 });
      const hash = crypto.createHash('sha256');
      let header = null;
      let data = null;
      let next = null;
      let digest = null;
      let failed = false;
      const fail = (error) => {
        if (failed) return;
        failed = true;
        call.cancel();
        reject(error);
      };
      call.on('data', (message) => {
        if (failed) return;
        if (message.header) {
          header = message.header;
          data = Buffer.alloc(Number(header.byte_count));
          next = Number(header.start);
        }
        if (!header) return fail(new IntegrityError('data before the header'));
        const offset = Number(message.offset);
        if (offset !== next) return fail(new IntegrityError(`expected element ${next}, got ${offset}`));
        const chunk = message.data;
        const position = (offset - Number(header.start)) * header.item_size;
        if (position + chunk.length > data.length) return fail(new IntegrityError('more data than announced'));
        chunk.copy(data, position);
        hash.update(chunk);
        next = offset + chunk.length / header.item_size;
        if (message.sha256 && message.sha256.length) digest = Buffer.from(message.sha256).toString('hex');
      });
      call.on('error', (error) => { if (!failed) { failed = true; reject(error); } });
      call.on('end', () => {
        if (failed) return;
        if (!header || digest === null) return reject(new IntegrityError('stream ended before the digest'));
        const received = hash.digest('hex');
        if (received !== digest) return reject(new IntegrityError(`SHA-256 mismatch: ${received} != ${digest}`));
        resolve({ header, data, sha256: digest });
      });
    });
  }
}

module.exports = { WeightinitClient, IntegrityError, SpecError, toTensorSpec, loadPackage, PROTO_DIR, grpc };
