'use strict';
// Fetch one tensor from a weightinit server and print what came back.
//   node example.js [HOST:PORT]        (default: $WEIGHTINIT_SERVER, else 127.0.0.1:50051)
// In a project that installed the package, require('weightinit-client') instead of require('./').

const { WeightinitClient } = require('./');

async function main() {
  const client = new WeightinitClient(process.argv[2] || process.env.WEIGHTINIT_SERVER || '127.0.0.1:50051');
  try {
    const { shape, dtype, values, digest, digestAlgorithm } = await client.generate({
      scheme: 'kaiming_normal', shape: [512, 256], seed: 7, name: 'fc1.weight',
      params: { mode: 'fan_out', nonlinearity: 'relu' },
    });
    // digest: checked against the bytes received; BLAKE3 unless the client was made with { digest: 'sha256' }
    const kind = `${values.constructor.name}(${values.length})`;
    console.log(`${dtype} [${shape.join(', ')}] ${kind} ${digestAlgorithm} ${digest}`);
    console.log(`first values: ${Array.from(values.slice(0, 4), (v) => v.toFixed(6)).join(' ')}`);
  } finally {
    client.close();
  }
}

main().catch((error) => {
  console.error(`${error.name}: ${error.message}`);
  process.exitCode = 1;
});
