// Backpressure from a Node @grpc/grpc-js client: streams many tiny items
// into a queue slower than the client, and into a paused queue that is
// resumed after 2 s, while an unrelated unary call loops on the same channel.
//
// Checks that every id is answered exactly once with its own payload, that
// the stream ends OK and that every unrelated call succeeded. Exits 1
// otherwise.
//
//   node backpressure.js --addr 127.0.0.1:20081 --items 20000
'use strict';

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const root = path.resolve(__dirname, '../../../proto');
const definition = protoLoader.loadSync(
  ['batchgate/v1/batchgate.proto', 'batchgate/v1/control.proto'],
  { includeDirs: [root], keepCase: true, longs: Number, defaults: true, oneofs: true },
);
const v1 = grpc.loadPackageDefinition(definition).batchgate.v1;

// 0 to 8 bytes, so every frame on the wire is tiny.
function payload(i) {
  return Buffer.alloc(i % 9, i % 251);
}

function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + 30000);
    client[method](request, { deadline }, (err, reply) => (err ? reject(err) : resolve(reply)));
  });
}

// Loops a unary Submit on the shared channel until `stop.done`.
async function sideCalls(batcher, stop, outcome) {
  while (!stop.done) {
    try {
      const reply = await unary(batcher, 'Submit', { queue: 'side', payload: Buffer.from('side') });
      if (reply.payload.toString() !== 'side') outcome.bad.push(`unexpected payload ${reply.payload}`);
      outcome.ok += 1;
    } catch (err) {
      outcome.bad.push(`${err.code}: ${err.details}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

// Writes items as fast as the stream takes them, honouring write()'s
// backpressure (the 'drain' event), so HTTP/2 flow control paces it.
function writeAll(call, queue, items, progress) {
  let i = 0;
  function more() {
    progress.sent = i;
    while (i < items) {
      const ok = call.write({ id: String(i), queue, payload: payload(i) });
      i += 1;
      progress.sent = i;
      if (!ok) {
        call.once('drain', more);
        return;
      }
    }
    call.end();
  }
  more();
}

async function streamCase(channelOptions, addr, queue, items, pause) {
  // One channel: the stream, the unary calls and the control calls share
  // the same HTTP/2 connection.
  const batcher = new v1.Batcher(addr, grpc.credentials.createInsecure(), channelOptions);
  const control = new v1.BatchControl(addr, grpc.credentials.createInsecure(), {
    ...channelOptions,
    channelOverride: batcher.getChannel(),
  });
  const problems = [];
  let resumed = Promise.resolve();
  const progress = { sent: 0 };
  let sentWhilePaused = null;
  if (pause) {
    await unary(control, 'PauseQueue', { name: queue });
    resumed = new Promise((resolve) => setTimeout(resolve, 2000)).then(() => {
      sentWhilePaused = progress.sent;
      return unary(control, 'ResumeQueue', { name: queue }).catch((err) => {
        problems.push(`resume failed: ${err.code} ${err.details}`);
      });
    });
  }
  const stop = { done: false };
  const side = { ok: 0, bad: [] };
  const sideDone = sideCalls(batcher, stop, side);

  const seen = new Map();
  const started = Date.now();
  await new Promise((resolve) => {
    const call = batcher.StreamSubmit({ deadline: new Date(Date.now() + 300000) });
    call.on('data', (answer) => {
      const i = Number(answer.id);
      seen.set(i, (seen.get(i) || 0) + 1);
      if (answer.outcome === 'error') {
        problems.push(`id ${i}: error ${answer.error.code} ${answer.error.message}`);
      } else if (!answer.result.payload.equals(payload(i))) {
        problems.push(`id ${i}: payload ${answer.result.payload.toString('hex')}`);
      }
    });
    call.on('error', (err) => {
      problems.push(`stream ended ${err.code}: ${err.details} after ${seen.size} answers`);
      resolve();
    });
    call.on('end', resolve);
    writeAll(call, queue, items, progress);
  });
  const elapsed = (Date.now() - started) / 1000;
  stop.done = true;
  await sideDone;
  await resumed;
  batcher.close();

  const missing = [];
  for (let i = 0; i < items; i += 1) if (!seen.has(i)) missing.push(i);
  const twice = [...seen].filter(([, n]) => n > 1).map(([i]) => i);
  if (missing.length) problems.push(`${missing.length} ids unanswered (first ${missing.slice(0, 5)})`);
  if (twice.length) problems.push(`${twice.length} ids answered more than once (first ${twice.slice(0, 5)})`);
  if (side.bad.length) problems.push(`${side.bad.length} unrelated calls failed (first: ${side.bad[0]})`);
  if (side.ok === 0) problems.push('no unrelated call completed');
  let label = `${queue}${pause ? ' (paused 2 s)' : ''}`;
  if (sentWhilePaused !== null) {
    label += `, ${sentWhilePaused} items written before flow control held the client`;
  }
  console.log(
    `node ${label}: ${seen.size}/${items} ids answered in ${elapsed.toFixed(1)} s, ` +
      `${side.ok} unrelated calls OK, ${problems.length} problems`,
  );
  return problems;
}

async function main() {
  const addr = arg('addr', '127.0.0.1:20081');
  const items = Number(arg('items', '20000'));
  const options = {};
  const problems = [
    ...(await streamCase(options, addr, 'slow', items, false)),
    ...(await streamCase(options, addr, 'held', items, true)),
  ];
  for (const p of problems.slice(0, 20)) console.error(`  problem: ${p}`);
  process.exit(problems.length ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
