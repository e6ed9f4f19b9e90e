'use strict';
// Runs against the server named by WEIGHTINIT_SERVER (host:port) and compares every tensor's bytes
// with the Python client's (`python -m weightinit generate --server ... -o -`; the interpreter is
// WEIGHTINIT_PYTHON, default python3) and with the Python in-process engine (no --server).

const test = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { WeightinitClient, toTensorSpec, grpc } = require('..');

const SERVER = process.env.WEIGHTINIT_SERVER;
const PYTHON = process.env.WEIGHTINIT_PYTHON || 'python3';
const REPO = path.resolve(__dirname, '..', '..', '..');

function pythonBytes(spec, { server = SERVER, range } = {}) {
  const args = ['-m', 'weightinit', 'generate', '--spec', '-', '-o', '-'];
  if (server) args.push('--server', server);
  if (range) args.push('--range', range);
  // uint64 seeds travel as strings in JS; JSON gets them back as integer literals
  const json = JSON.stringify(spec).replace(/"(seed|stream)":"(\d+)"/g, '"$1":$2');
  const result = spawnSync(PYTHON, args, { input: json, cwd: REPO, maxBuffer: 1 << 30 });
  assert.strictEqual(result.status, 0, `python failed: ${result.stderr}`);
  return result.stdout;
}

const SPECS = [
  { scheme: 'kaiming_normal', shape: [256, 128], dtype: 'float32', seed: 7, name: 'fc1.weight',
    params: { mode: 'fan_out', nonlinearity: 'relu' } },
  { scheme: 'truncated_normal', shape: [1000], dtype: 'float64', seed: 3, params: { std: 0.02, lower: -0.04, upper: 0.04 } },
  { scheme: 'he_normal', shape: [3, 3, 16, 32], dtype: 'bfloat16', layout: 'keras', name: 'conv' },
  { scheme: 'variance_scaling', shape: [64, 64], dtype: 'float16', seed: '18446744073709551615',
    params: { scale: 2, mode: 'fan_avg', distribution: 'uniform' } },
  { scheme: 'orthogonal', shape: [32, 48], name: 'q', params: { gain: 1.5 } },
  { scheme: 'uniform', shape: [600000], name: 'multi-chunk', params: { low: -1, high: 1 } },
  // JAX axis lists (one empty) and a bare-int batch axis; a complex dtype
  { scheme: 'glorot_normal', shape: [3, 4, 5, 6], dtype: 'complex64', seed: 5, layout: 'axes', in_axis: [],
    out_axis: [1, 3], batch_axis: 2 },
];

const opts = { skip: SERVER ? false : 'set WEIGHTINIT_SERVER=host:port to run against a server' };

test('spec conversion maps engine names onto the proto', () => {
  const message = toTensorSpec(SPECS[0]);
  assert.deepStrictEqual(message.kaiming_normal, { mode: 'FAN_MODE_FAN_OUT', nonlinearity: 'NONLINEARITY_RELU' });
  assert.strictEqual(message.dtype, 'DATA_TYPE_FP32');
  assert.deepStrictEqual(message.shape, ['256', '128']);
});

test('tensors match the Python client and the Python engine byte for byte', opts, async () => {
  const client = new WeightinitClient(SERVER);
  try {
    for (const spec of SPECS) {
      const { header, data, sha256 } = await client.generate(spec, { chunkElements: 50000 });
      assert.deepStrictEqual(header.shape.map(Number), spec.shape);
      assert.strictEqual(sha256, crypto.createHash('sha256').update(data).digest('hex'));
      assert.ok(data.equals(pythonBytes(spec)), `${spec.scheme}: differs from the Python client`);
      assert.ok(data.equals(pythonBytes(spec, { server: null })), `${spec.scheme}: differs from the engine`);
    }
  } finally {
    client.close();
  }
});

test('element ranges match the Python client', opts, async () => {
  const client = new WeightinitClient(SERVER);
  try {
    const spec = SPECS[5];
    const { data, header } = await client.generate(spec, { start: 12345, stop: 345678, chunkElements: 70000 });
    assert.strictEqual(Number(header.start), 12345);
    assert.ok(data.equals(pythonBytes(spec, { range: '12345:345678' })));
  } finally {
    client.close();
  }
});

test('capabilities list the schemes; bad specs are INVALID_ARGUMENT', opts, async () => {
  const client = new WeightinitClient(SERVER);
  try {
    const info = await client.capabilities();
    const names = info.schemes.map((s) => s.name);
    for (const name of ['kaiming_normal', 'orthogonal', 'he_normal', 'torch_default']) assert.ok(names.includes(name));
    await assert.rejects(client.generate({ scheme: 'normal', shape: [4], params: { std: -1 } }),
      (error) => error.code === grpc.status.INVALID_ARGUMENT && /spec\.normal\.std/.test(error.details));
  } finally {
    client.close();
  }
});
