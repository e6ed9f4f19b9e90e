'use strict';
// node --test test/ : needs no Python. The conversion tests always run; the rest run against the server
// named by WEIGHTINIT_SERVER (host:port) and check every tensor three ways: against the digest the
// server sends (recomputed here, SHA-256 and BLAKE3), against values this file computes itself (zeros, ones, constants,
// uniform bounds), and against fixtures/tensors.json (bytes of the Python engine, kept current by
// the pytest tests/test_node_package.py). With WEIGHTINIT_PYTHON=/path/to/python set explicitly (.ci/run
// does), the bytes are also compared with that Python's client and engine.

const test = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { Blake3Hasher } = require('@napi-rs/blake-hash');
const {
  WeightinitClient, SpecError, UnavailableError, WeightinitError, toTensorSpec, toModelManifest, toRegion, typedValues,
  serverAddress,
} = require('..');

const DIGESTS = {
  sha256: (bytes) => crypto.createHash('sha256').update(bytes).digest('hex'),
  blake3: (bytes) => new Blake3Hasher().update(bytes).digest('hex'),
};

const SERVER = process.env.WEIGHTINIT_SERVER;
const PYTHON = process.env.WEIGHTINIT_PYTHON;
const FIXTURES = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'tensors.json'), 'utf8'));
const needsServer = { skip: SERVER ? false : 'set WEIGHTINIT_SERVER=host:port to run against a server' };
const needsPython = { skip: SERVER && PYTHON ? false : 'set WEIGHTINIT_SERVER and WEIGHTINIT_PYTHON=/path/to/python' };

async function withClient(body) {
  const client = new WeightinitClient(SERVER);
  try {
    return await body(client);
  } finally {
    client.close();
  }
}

test('spec conversion maps engine names onto the proto', () => {
  const message = toTensorSpec(FIXTURES[0].spec);
  assert.deepStrictEqual(message.kaiming_normal, { mode: 'FAN_MODE_FAN_OUT', nonlinearity: 'NONLINEARITY_RELU' });
  assert.strictEqual(message.dtype, 'DATA_TYPE_FP32');
  assert.deepStrictEqual(message.shape, ['16', '8']);
  assert.throws(() => toTensorSpec({ scheme: 'normal', shape: [2], dtype: 'int8' }), SpecError);
});

test('server addresses default to port 50051 and reject bad ports', () => {
  assert.strictEqual(serverAddress('127.0.0.1'), '127.0.0.1:50051');
  assert.strictEqual(serverAddress('[::1]:7'), '[::1]:7');
  assert.throws(() => serverAddress('127.0.0.1:99999'), /1\.\.65535/);
});

test('typed arrays view the little-endian bytes', () => {
  const data = Buffer.from(new ArrayBuffer(8));
  data.writeFloatLE(1.5, 0);
  data.writeFloatLE(-2, 4);
  assert.deepStrictEqual(Array.from(typedValues(data, 'float32')), [1.5, -2]);
  assert.deepStrictEqual(Array.from(typedValues(data, 'bfloat16')), [0, 0x3fc0, 0, 0xc000]);
  assert.ok(typedValues(data, 'float64') instanceof Float64Array);
});

test('bytes equal the engine fixtures and the digest, under each digest algorithm', needsServer, async () => {
  await withClient(async (client) => {
    for (const fixture of FIXTURES) {
      const { spec, base64 } = fixture;
      for (const [algorithm, hash] of Object.entries(DIGESTS)) {
        const result = await client.generate(spec, { chunkElements: 40, digest: algorithm });
        const label = `${spec.name || spec.scheme} (${algorithm})`;
        assert.strictEqual(result.digestAlgorithm, algorithm, label);
        assert.strictEqual(result.digest, fixture[algorithm], label);
        assert.strictEqual(hash(result.data), fixture[algorithm], label);
        assert.strictEqual(result.sha256, algorithm === 'sha256' ? fixture.sha256 : undefined, label);
        assert.ok(result.data.equals(Buffer.from(base64, 'base64')), `${label}: bytes differ from the fixture`);
        assert.deepStrictEqual(result.shape, spec.shape);
        assert.strictEqual(result.values.length * result.values.BYTES_PER_ELEMENT, result.data.length);
      }
    }
  });
});

test('values this test can compute: zeros, ones, constants, uniform bounds', needsServer, async () => {
  await withClient(async (client) => {
    const cases = [
      [{ scheme: 'zeros', shape: [3, 5], dtype: 'float64' }, Float64Array, 0],
      [{ scheme: 'ones', shape: [7], dtype: 'float16' }, Uint16Array, 0x3c00],   // 1.0 in binary16
      [{ scheme: 'ones', shape: [7], dtype: 'bfloat16' }, Uint16Array, 0x3f80],  // 1.0 in bfloat16
      [{ scheme: 'constant', shape: [1000], params: { value: 0.25 } }, Float32Array, 0.25],
      [{ scheme: 'constant', shape: [4], dtype: 'float64', params: { value: 1 / 3 } }, Float64Array, 1 / 3],
      [{ scheme: 'constant', shape: [4], params: { value: 0.1 } }, Float32Array, Math.fround(0.1)],
    ];
    for (const [spec, Kind, expected] of cases) {
      const { values, dtype } = await client.generate(spec);
      assert.ok(values instanceof Kind, `${spec.scheme} ${dtype}`);
      assert.strictEqual(values.length, spec.shape.reduce((a, b) => a * b, 1));
      assert.ok(values.every((v) => v === expected), `${spec.scheme} ${dtype}: expected every value ${expected}`);
    }
    const { values } = await client.generate(
      { scheme: 'uniform', shape: [200000], dtype: 'float64', seed: 11, params: { low: -2, high: 3 } });
    let sum = 0;
    for (const v of values) {
      assert.ok(v >= -2 && v < 3, `uniform value ${v} outside [-2, 3)`);
      sum += v;
    }
    assert.ok(Math.abs(sum / values.length - 0.5) < 0.02, `uniform mean ${sum / values.length}`);  // se ~ 0.003
  });
});

test('an element range is the same slice of the whole tensor', needsServer, async () => {
  await withClient(async (client) => {
    const spec = { scheme: 'uniform', shape: [600000], name: 'multi-chunk', params: { low: -1, high: 1 } };
    const whole = await client.generate(spec, { chunkElements: 50000 });
    const part = await client.generate(spec, { start: 12345, stop: 345678, chunkElements: 70000 });
    assert.strictEqual(Number(part.header.start), 12345);
    assert.ok(part.data.equals(whole.data.subarray(12345 * 4, 345678 * 4)));
    assert.deepStrictEqual(part.values, whole.values.subarray(12345, 345678));
  });
});

test('capabilities list the schemes; a bad spec is a SpecError naming the field', needsServer, async () => {
  await withClient(async (client) => {
    const info = await client.capabilities();
    const names = info.schemes.map((s) => s.name);
    for (const name of ['kaiming_normal', 'orthogonal', 'he_normal', 'torch_default']) assert.ok(names.includes(name));
    await assert.rejects(client.generate({ scheme: 'normal', shape: [4], params: { std: -1 } }), (error) => {
      assert.ok(error instanceof SpecError && error instanceof WeightinitError);
      assert.strictEqual(error.field, 'params.std');
      assert.strictEqual(error.violationField, 'spec.normal.std');
      assert.strictEqual(error.code, 'INVALID_ARGUMENT');
      return true;
    });
  });
});

test('an unreachable server is an UnavailableError', async () => {
  const port = await new Promise((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port: free } = probe.address();
      probe.close(() => resolve(free));
    });
  });
  const client = new WeightinitClient(`127.0.0.1:${port}`);
  try {
    await assert.rejects(client.generate({ scheme: 'ones', shape: [2] }, { deadlineSeconds: 5 }),
      (error) => error instanceof UnavailableError && error.code === 'UNAVAILABLE');
  } finally {
    client.close();
  }
});

function pythonBytes(spec, { server = SERVER } = {}) {
  const args = ['-m', 'weightinit', 'generate', '--spec', '-', '-o', '-'];
  if (server) args.push('--server', server);
  const json = JSON.stringify(spec).replace(/"(seed|stream)":"(\d+)"/g, '"$1":$2');  // uint64 as JSON integers
  const result = spawnSync(PYTHON, args, { input: json, maxBuffer: 1 << 30 });
  assert.strictEqual(result.status, 0, `${PYTHON} failed: ${result.stderr}`);
  return result.stdout;
}

test('cross-check with the Python client and engine (WEIGHTINIT_PYTHON)', needsPython, async () => {
  await withClient(async (client) => {
    for (const { spec } of FIXTURES) {
      const { data } = await client.generate(spec);
      assert.ok(data.equals(pythonBytes(spec)), `${spec.scheme}: differs from the Python client`);
      assert.ok(data.equals(pythonBytes(spec, { server: null })), `${spec.scheme}: differs from the engine`);
    }
  });
});

test('regions resolve like the Python client and name the bad dimension', () => {
  assert.deepStrictEqual(toRegion([[0, 2], [-3, null]], [4, 5, 6]),
    [{ start: '0', stop: '2' }, { start: '2', stop: '5' }]);
  assert.throws(() => toRegion([[0, 2], [1, 9]], [4, 5]), (error) => error instanceof SpecError && error.field === 'index[1]');
  assert.throws(() => toRegion([[3, 1]], [4, 5]), (error) => error.field === 'index[0]');
  assert.throws(() => toRegion([[0, 1], [0, 1], [0, 1]], [4, 5]), (error) => error.field === 'index');
});

// The region [a0:b0, a1:b1, (all of the rest)] of a row-major tensor, cut out of its whole bytes here.
function sliceRegion(whole, shape, index, itemSize) {
  const strides = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  const bounds = shape.map((size, d) => (d < index.length ? index[d] : [0, size]));
  const parts = [];
  const walk = (d, base) => {
    if (d === shape.length - 1) {
      const [a, b] = bounds[d];
      parts.push(whole.subarray((base + a) * itemSize, (base + b) * itemSize));
      return;
    }
    for (let i = bounds[d][0]; i < bounds[d][1]; i += 1) walk(d + 1, base + i * strides[d]);
  };
  walk(0, 0);
  return Buffer.concat(parts);
}

test('N-d regions equal the same slice of the whole tensor, byte for byte', needsServer, async () => {
  await withClient(async (client) => {
    for (const [spec, index] of [
      [{ scheme: 'kaiming_normal', shape: [64, 48], seed: 7, name: 'fc1.weight' }, [[10, 50], [8, 40]]],
      [{ scheme: 'he_normal', shape: [3, 4, 16, 8], dtype: 'bfloat16', layout: 'keras', name: 'conv' }, [[1, 3], [0, 2], [4, 12]]],
      [{ scheme: 'uniform', shape: [40, 30], dtype: 'float64' }, [[5, 20]]],
    ]) {
      const whole = await client.generate(spec);
      const part = await client.generate(spec, { index, chunkElements: 100 });
      assert.deepStrictEqual(part.header.region.map((r) => [Number(r.start), Number(r.stop)]).slice(0, index.length), index);
      assert.deepStrictEqual(part.shape, spec.shape.map((size, d) => (d < index.length ? index[d][1] - index[d][0] : size)));
      assert.ok(part.data.equals(sliceRegion(whole.data, spec.shape, index, whole.header.item_size)), spec.scheme);
    }
  });
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
  const result = spawnSync(PYTHON, ['-c', code], { input: JSON.stringify(manifest) });
  assert.strictEqual(result.status, 0, `python failed: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

test('recipe manifests travel as recipe_json with name/shape tensors', () => {
  const message = toModelManifest(RECIPE_MANIFEST);
  assert.deepStrictEqual(JSON.parse(message.recipe_json), RECIPE_MANIFEST.recipe);
  assert.deepStrictEqual(message.tensors[4], { name: 'transformer.h.1.attn.c_proj.weight', shape: ['16', '16'],
    dtype: 'DATA_TYPE_BF16' });
});

test('the server expands a recipe into the same specs and bytes as Python', needsPython, async () => {
  const client = new WeightinitClient(SERVER);
  try {
    const tensors = await client.generateModel(RECIPE_MANIFEST, { chunkElements: 100, digest: 'sha256' });
    const expected = pythonExpansion(RECIPE_MANIFEST);
    assert.strictEqual(tensors.length, expected.length);
    tensors.forEach((tensor, index) => {
      const [spec, sha256] = expected[index];
      assert.deepStrictEqual(tensor.spec, spec);
      assert.strictEqual(tensor.sha256, sha256);
      assert.strictEqual(tensor.digest, sha256);
      assert.strictEqual(DIGESTS.sha256(tensor.data), sha256);
    });
  } finally {
    client.close();
  }
});
