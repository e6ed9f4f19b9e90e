'use strict';
// node --test test/ : digest negotiation (DigestAlgorithm, SHA-256 or BLAKE3) against the server named by
// WEIGHTINIT_SERVER. Each algorithm end to end (digests equal the Python engine's from fixtures/tensors.json and
// the ones recomputed here; with WEIGHTINIT_PYTHON also Python's hashlib / blake3 over weightinit.generate bytes),
// the `digest` option's errors, the server's answer to an unknown DigestAlgorithm value, and streams altered by
// a relay server in this file (a flipped byte, an unknown algorithm, a server from before the field).

const test = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { Blake3Hasher } = require('@napi-rs/blake-hash');
const {
  WeightinitClient, SpecError, IntegrityError, toTensorSpec, toModelManifest, loadPackage, defaultDigest, grpc,
} = require('..');

const SERVER = process.env.WEIGHTINIT_SERVER;
const PYTHON = process.env.WEIGHTINIT_PYTHON;
const FIXTURES = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'tensors.json'), 'utf8'));
const needsServer = { skip: SERVER ? false : 'set WEIGHTINIT_SERVER=host:port to run against a server' };
const needsPython = { skip: SERVER && PYTHON ? false : 'set WEIGHTINIT_SERVER and WEIGHTINIT_PYTHON=/path/to/python' };

const DIGESTS = {
  sha256: (bytes) => crypto.createHash('sha256').update(bytes).digest('hex'),
  blake3: (bytes) => new Blake3Hasher().update(bytes).digest('hex'),
};
const TITLES = { sha256: 'SHA-256', blake3: 'BLAKE3' };
const HEADER_VALUES = { sha256: 'DIGEST_ALGORITHM_SHA256', blake3: 'DIGEST_ALGORITHM_BLAKE3' };

// Three tensors of several chunks each (chunkElements 100), a flat range of each and a region of the 2-D ones.
const SPECS = [
  { scheme: 'kaiming_normal', shape: [40, 30], seed: 7, name: 'fc1.weight' },
  { scheme: 'uniform', shape: [1000], dtype: 'float64', seed: 3, name: 'bias', params: { low: -1, high: 1 } },
  { scheme: 'normal', shape: [25, 40], dtype: 'bfloat16', seed: 9, name: 'emb' },
];
const RANGE = [123, 987];
const REGION = [[5, 20], [4, 20]];

async function withClient(body, target = SERVER, options = {}) {
  const client = new WeightinitClient(target, options);
  try {
    return await body(client);
  } finally {
    client.close();
  }
}

// A loopback server relaying Generate and GenerateModel to SERVER: each request passes through
// request(message), each response message through response(message, n) (n counts the call's messages).
async function startRelay({ request = (message) => message, response = (message) => message } = {}) {
  const pkg = loadPackage();
  const upstream = new pkg.InitializerService(SERVER, grpc.credentials.createInsecure());
  const forward = (method) => (call) => {
    const upstreamCall = upstream[method](request(call.request));
    let count = 0;
    call.on('cancelled', () => upstreamCall.cancel());
    upstreamCall.on('data', (message) => call.write(response(message, count++)));
    upstreamCall.on('end', () => call.end());
    upstreamCall.on('error', (error) => {
      if (error.code !== grpc.status.CANCELLED) call.destroy(error);
    });
  };
  const server = new grpc.Server();
  server.addService(pkg.InitializerService.service,
    { Generate: forward('Generate'), GenerateModel: forward('GenerateModel') });
  const port = await new Promise((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(),
      (error, bound) => (error ? reject(error) : resolve(bound)));
  });
  return { target: `127.0.0.1:${port}`, close: () => { upstream.close(); server.forceShutdown(); } };
}

// One byte of response message `n`'s data flipped.
function flipByteOfMessage(n) {
  return (message, count) => {
    if (count === n) {
      assert.ok(message.data.length > 0, `message ${n} carries no data to corrupt`);
      message.data = Buffer.from(message.data);
      message.data[message.data.length >> 1] ^= 0x10;
    }
    return message;
  };
}

test('the digest option takes sha256 or blake3; anything else is a SpecError naming digest', async () => {
  assert.strictEqual(defaultDigest(), 'blake3');  // its binding is installed here: BLAKE3 checks 2.5x faster
  await withClient(async (client) => assert.strictEqual(client.digest, 'blake3'), '127.0.0.1:1');
  await withClient(async (client) => assert.strictEqual(client.digest, 'sha256'), '127.0.0.1:1', { digest: 'sha256' });
  for (const bad of ['md5', 'SHA256', '', null, 2]) {
    assert.throws(() => new WeightinitClient('127.0.0.1:1', { digest: bad }),
      (error) => error instanceof SpecError && error.field === 'digest' && /sha256, blake3/.test(error.message));
  }
  // per call: rejected before anything is sent (nothing listens on port 1)
  await withClient(async (client) => {
    await assert.rejects(client.generate({ scheme: 'ones', shape: [2] }, { digest: 'xxh3' }),
      (error) => error instanceof SpecError && error.field === 'digest' && /"xxh3"/.test(error.message));
    const manifest = { tensors: [{ scheme: 'ones', shape: [2], name: 'a' }] };
    await assert.rejects(client.generateModel(manifest, { digest: 'crc32' }),
      (error) => error instanceof SpecError && error.field === 'digest');
  }, '127.0.0.1:1');
});

test('each algorithm end to end: header, digest, bytes of whole tensors, ranges, regions', needsServer, async () => {
  for (const algorithm of Object.keys(DIGESTS)) {
    // the client's option, then the per-call one overriding the other algorithm
    const other = algorithm === 'sha256' ? 'blake3' : 'sha256';
    for (const [options, call] of [[{ digest: algorithm }, {}], [{ digest: other }, { digest: algorithm }]]) {
      await withClient(async (client) => {
        for (const spec of SPECS) {
          const whole = await client.generate(spec, { chunkElements: 100, ...call });
          const label = `${spec.name} ${algorithm}`;
          assert.strictEqual(whole.header.digest_algorithm, HEADER_VALUES[algorithm], label);
          assert.strictEqual(whole.digestAlgorithm, algorithm, label);
          assert.strictEqual(whole.digest, DIGESTS[algorithm](whole.data), label);
          assert.strictEqual(whole.sha256, algorithm === 'sha256' ? whole.digest : undefined, label);
          const part = await client.generate(spec, { start: RANGE[0], stop: RANGE[1], chunkElements: 100, ...call });
          const size = whole.header.item_size;
          assert.ok(part.data.equals(whole.data.subarray(RANGE[0] * size, RANGE[1] * size)), label);
          assert.strictEqual(part.digest, DIGESTS[algorithm](part.data), `${label} range`);
          assert.strictEqual(part.digestAlgorithm, algorithm);
        }
        for (const spec of SPECS.filter((s) => s.shape.length === 2)) {
          const region = await client.generate(spec, { index: REGION, chunkElements: 64, ...call });
          assert.strictEqual(region.data.length, 15 * 16 * region.header.item_size);
          assert.strictEqual(region.digest, DIGESTS[algorithm](region.data), `${spec.name} region`);
          assert.strictEqual(region.digestAlgorithm, algorithm);
        }
      }, SERVER, options);
    }
  }
});

test('each algorithm end to end over GenerateModel: digests equal the engine fixtures', needsServer, async () => {
  const named = FIXTURES.filter((fixture) => fixture.spec.name);
  assert.ok(named.length >= 3);
  for (const algorithm of Object.keys(DIGESTS)) {
    await withClient(async (client) => {
      const manifest = { tensors: named.map((fixture) => fixture.spec) };
      const tensors = await client.generateModel(manifest, { chunkElements: 16 });
      assert.strictEqual(tensors.length, named.length);
      tensors.forEach((tensor, index) => {
        const fixture = named[index];
        assert.strictEqual(tensor.header.digest_algorithm, HEADER_VALUES[algorithm]);
        assert.strictEqual(tensor.digestAlgorithm, algorithm);
        assert.strictEqual(tensor.digest, fixture[algorithm], `${fixture.spec.name} ${algorithm}`);
        assert.strictEqual(tensor.sha256, algorithm === 'sha256' ? fixture.sha256 : undefined);
        assert.ok(tensor.data.equals(Buffer.from(fixture.base64, 'base64')));
      });
    }, SERVER, { digest: algorithm });
  }
});

// Python's digests (hashlib.sha256, blake3.blake3) of weightinit.generate's bytes: whole, RANGE, REGION (2-D specs).
function pythonDigests(specs) {
  const code = 'import json, sys, hashlib, blake3, numpy as np, weightinit as wi\n'
    + 'specs, (a, b), region = json.load(sys.stdin)\n'
    + 'def both(array):\n'
    + '    data = wi.to_le_bytes(np.ascontiguousarray(array))\n'
    + '    return {"sha256": hashlib.sha256(data).hexdigest(), "blake3": blake3.blake3(data).hexdigest()}\n'
    + 'out = []\n'
    + 'for s in specs:\n'
    + '    w = wi.generate_raw(s)\n'
    + '    out.append({"whole": both(w), "range": both(w.reshape(-1)[a:b]),\n'
    + '                "region": both(w[tuple(slice(*p) for p in region)]) if w.ndim == 2 else None})\n'
    + 'print(json.dumps(out))\n';
  const result = spawnSync(PYTHON, ['-c', code], { input: JSON.stringify([specs, RANGE, REGION]) });
  assert.strictEqual(result.status, 0, `python failed: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

test('digests equal what Python computes over weightinit.generate bytes (WEIGHTINIT_PYTHON)', needsPython, async () => {
  const expected = pythonDigests(SPECS);
  for (const algorithm of Object.keys(DIGESTS)) {
    await withClient(async (client) => {
      for (const [index, spec] of SPECS.entries()) {
        const label = `${spec.name} ${algorithm}`;
        const whole = await client.generate(spec, { chunkElements: 100 });
        assert.strictEqual(whole.digest, expected[index].whole[algorithm], label);
        const part = await client.generate(spec, { start: RANGE[0], stop: RANGE[1], chunkElements: 100 });
        assert.strictEqual(part.digest, expected[index].range[algorithm], `${label} range`);
        if (spec.shape.length === 2) {
          const region = await client.generate(spec, { index: REGION, chunkElements: 64 });
          assert.strictEqual(region.digest, expected[index].region[algorithm], `${label} region`);
        }
      }
      const tensors = await client.generateModel({ tensors: SPECS }, { chunkElements: 100 });
      assert.deepStrictEqual(tensors.map((t) => t.digest), expected.map((e) => e.whole[algorithm]));
    }, SERVER, { digest: algorithm });
  }
});

// google.rpc.Status (grpc-status-details-bin) -> its BadRequest field violations [[field, description]]: a few
// lines of protobuf wire format (length-delimited fields only, varints skipped).
function fieldViolations(statusBytes) {
  const fields = (bytes) => {
    const found = [];
    let position = 0;
    const varint = () => {
      let value = 0;
      for (let shift = 0; ; shift += 7) {
        const byte = bytes[position++];
        value += (byte & 0x7f) * 2 ** shift;
        if (byte < 0x80) return value;
      }
    };
    while (position < bytes.length) {
      const key = varint();
      if ((key & 7) === 0) { varint(); continue; }
      assert.strictEqual(key & 7, 2, 'only varint and length-delimited fields expected');
      const length = varint();
      found.push([key >> 3, bytes.subarray(position, position + length)]);
      position += length;
    }
    return found;
  };
  const violations = [];
  for (const [number, any] of fields(statusBytes)) {
    if (number !== 3) continue;  // Status.details: Any {type_url = 1, value = 2}
    const parts = Object.fromEntries(fields(any));
    if (!String(parts[1]).endsWith('google.rpc.BadRequest')) continue;
    for (const [, violation] of fields(parts[2])) {
      const { 1: field, 2: description } = Object.fromEntries(fields(violation));
      violations.push([String(field), String(description)]);
    }
  }
  return violations;
}

test('an unknown DigestAlgorithm value is INVALID_ARGUMENT naming digest_algorithm', needsServer, async () => {
  const pkg = loadPackage();
  const stub = new pkg.InitializerService(SERVER, grpc.credentials.createInsecure());
  try {
    const requests = {
      Generate: { spec: toTensorSpec({ scheme: 'ones', shape: [4] }), digest_algorithm: 99 },
      GenerateModel: { manifest: toModelManifest({ tensors: [{ scheme: 'ones', shape: [4], name: 'a' }] }),
        digest_algorithm: 99 },
    };
    for (const [method, request] of Object.entries(requests)) {
      const error = await new Promise((resolve, reject) => {
        const call = stub[method](request);
        call.on('data', () => reject(new Error(`${method}: the server sent data for digest_algorithm 99`)));
        call.on('error', resolve);
      });
      assert.strictEqual(error.code, grpc.status.INVALID_ARGUMENT, method);
      assert.match(error.details, /^digest_algorithm: .*99/, method);
      const [details] = error.metadata.get('grpc-status-details-bin');
      const violations = fieldViolations(details);
      assert.deepStrictEqual(violations.map(([field]) => field), ['digest_algorithm'], method);
      assert.match(violations[0][1], /99/);
    }
  } finally {
    stub.close();
  }
});

test('a flipped byte in one chunk is caught under each algorithm (Generate, GenerateModel)', needsServer, async () => {
  const relay = await startRelay({ response: flipByteOfMessage(2) });
  try {
    await withClient(async (client) => {
      for (const algorithm of Object.keys(DIGESTS)) {
        await assert.rejects(client.generate(SPECS[1], { chunkElements: 100, digest: algorithm }), (error) => {
          assert.ok(error instanceof IntegrityError, error.stack);
          assert.match(error.message, new RegExp(`^${TITLES[algorithm]} mismatch for "bias"`));
          return true;
        });
        // GenerateModel: message 2 is the second tensor's only one (the first, 1200 elements, takes two)
        const model = client.generateModel({ tensors: SPECS }, { chunkElements: 1000, digest: algorithm });
        await assert.rejects(model, (error) => {
          assert.ok(error instanceof IntegrityError, error.stack);
          assert.match(error.message, new RegExp(`^${TITLES[algorithm]} mismatch for "bias"`));
          return true;
        });
      }
    }, relay.target);
  } finally {
    relay.close();
  }
  // the same relay passing the bytes unchanged: the streams check out
  const clean = await startRelay();
  try {
    await withClient(async (client) => {
      for (const algorithm of Object.keys(DIGESTS)) {
        const direct = await withClient((direct) => direct.generate(SPECS[1], { digest: algorithm }));
        const relayed = await client.generate(SPECS[1], { chunkElements: 100, digest: algorithm });
        assert.strictEqual(relayed.digest, direct.digest);
        const model = await client.generateModel({ tensors: SPECS }, { chunkElements: 1000, digest: algorithm });
        assert.strictEqual(model[1].digest, direct.digest);
      }
    }, clean.target);
  } finally {
    clean.close();
  }
});

test('a header naming an unknown algorithm is an IntegrityError; unset means SHA-256', needsServer, async () => {
  const unknown = await startRelay({
    response: (message) => { if (message.header) message.header.digest_algorithm = 99; return message; },
  });
  try {
    await withClient(async (client) => {
      await assert.rejects(client.generate(SPECS[0]), (error) => error instanceof IntegrityError
        && /"fc1\.weight" with digest algorithm 99, which this client does not know/.test(error.message));
      await assert.rejects(client.generateModel({ tensors: SPECS }), (error) => error instanceof IntegrityError
        && /digest algorithm 99/.test(error.message));
    }, unknown.target);
  } finally {
    unknown.close();
  }
  // an old server: the request's digest_algorithm is unknown to it (SHA-256), its header leaves the field
  // unset and its last message carries sha256 only
  const old = await startRelay({
    request: (message) => ({ ...message, digest_algorithm: 'DIGEST_ALGORITHM_UNSPECIFIED' }),
    response: (message) => {
      if (message.header) message.header.digest_algorithm = 'DIGEST_ALGORITHM_UNSPECIFIED';
      message.digest = Buffer.alloc(0);
      return message;
    },
  });
  try {
    await withClient(async (client) => {
      const fixture = FIXTURES[0];
      const result = await client.generate(fixture.spec, { chunkElements: 40 });
      assert.strictEqual(result.header.digest_algorithm, 'DIGEST_ALGORITHM_UNSPECIFIED');
      assert.strictEqual(result.digestAlgorithm, 'sha256');
      assert.strictEqual(result.digest, fixture.sha256);
      assert.strictEqual(result.sha256, fixture.sha256);
    }, old.target, { digest: 'blake3' });
  } finally {
    old.close();
  }
});
