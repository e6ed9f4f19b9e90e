'use strict';
// Runs against the server named by WEIGHTINIT_SERVER (host:port) and compares every tensor's bytes
// with the Python client's (`python -m weightinit generate --server ... -o -`; the interpreter is
// WEIGHTINIT_PYTHON, default python3) and with the Python in-process engine (no --server).

const test = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { WeightinitClient, toTensorSpec, toModelManifest, grpc } = require('..');

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

// A recipe manifest: the server expands it; the specs in the headers and the bytes must equal the Python
// expansion (weightinit.recipes.expand) and the Python engine's bytes for those specs.
const RECIPE_MANIFEST = {
  seed: 5,
  recipe: { recipe: 'gpt2', std: 0.03 },
  tensors: [
    { name: 'transformer.wte.weight', shape: [64, 16] },
    { name: 'transformer.h.0.ln_1.weight', shape: [16] },
    { name: 'transformer.h.0.attn.c_attn.weight', shape: [16, 48] },
    { name: 'transformer.h.0.attn.c_proj.weight', shape: [16, 16] },
    { name: 'transformer.h.1.attn.c_proj.weight', shape: [16, 16], dtype: 'bfloat16' },
  ],
};

function pythonExpansion(manifest) {
  const code = 'import json, sys, hashlib, weightinit as wi\n'
    + 'from weightinit.recipes import expand\n'
    + 'm = json.load(sys.stdin)\n'
    + 'specs = [wi.spec_from_dict(s).to_dict() for s in expand(m["recipe"], m["tensors"], seed=m["seed"])]\n'
    + 'print(json.dumps([[s, hashlib.sha256(wi.to_le_bytes(wi.generate_raw(s))).hexdigest()] for s in specs]))\n';
  const result = spawnSync(PYTHON, ['-c', code], { input: JSON.stringify(manifest), cwd: REPO });
  assert.strictEqual(result.status, 0, `python failed: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

test('recipe manifests travel as recipe_json with name/shape tensors', () => {
  const message = toModelManifest(RECIPE_MANIFEST);
  assert.deepStrictEqual(JSON.parse(message.recipe_json), RECIPE_MANIFEST.recipe);
  assert.deepStrictEqual(message.tensors[4], { name: 'transformer.h.1.attn.c_proj.weight', shape: ['16', '16'],
    dtype: 'DATA_TYPE_BF16' });
});

test('the server expands a recipe into the same specs and bytes as Python', opts, async () => {
  const client = new WeightinitClient(SERVER);
  try {
    const tensors = await client.generateModel(RECIPE_MANIFEST, { chunkElements: 100 });
    const expected = pythonExpansion(RECIPE_MANIFEST);
    assert.strictEqual(tensors.length, expected.length);
    tensors.forEach((tensor, index) => {
      const [spec, sha256] = expected[index];
      assert.deepStrictEqual(tensor.spec, spec);
      assert.strictEqual(tensor.sha256, sha256);
      assert.strictEqual(crypto.createHash('sha256').update(tensor.data).digest('hex'), sha256);
    });
  } finally {
    client.close();
  }
});
