/**
 * A 1 GiB stream through the proxy in flat memory: backpressure holds each direction to a socket buffer or two,
 * whatever the length of the stream. Client, proxy and origin share this process, so RSS covers all three.
 */
import { afterEach, expect, it } from 'vitest';
import { connectClient, readAll, startTcpOrigin, startTcpProxy } from './helpers.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

const GiB = 1024 * 1024 * 1024;
const MiB = 1024 * 1024;

it('streams 1 GiB through the proxy with flat memory', { timeout: 30_000 }, async () => {
  const origin = await startTcpOrigin('sink', 'sink');
  cleanup.push(() => origin.close());
  const p = await startTcpProxy([origin.address]);
  cleanup.push(() => p.stop());

  const client = await connectClient(p.port);
  const reply = readAll(client);
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  const rssBefore = process.memoryUsage.rss();
  let rssMax = rssBefore;
  const sampler = setInterval(() => {
    rssMax = Math.max(rssMax, process.memoryUsage.rss());
  }, 25);
  const started = performance.now();
  try {
    let sent = 0;
    while (sent < GiB) {
      sent += chunk.length;
      if (!client.write(chunk)) {
        await new Promise<void>((resolve, reject) => {
          const closed = (): void => reject(new Error('closed mid-stream'));
          client.once('close', closed);
          // One close listener per wait, removed when the wait ends (they added up to a MaxListeners warning).
          client.once('drain', () => {
            client.off('close', closed);
            resolve();
          });
        });
      }
      // A bounded stall guard: the whole test must finish in seconds on loopback.
      if (performance.now() - started > 25_000) throw new Error(`only ${sent / MiB} MiB sent in 25 s`);
    }
    client.end();
    const answer = (await reply).toString().trim();
    expect(Number(answer)).toBe(GiB);
  } finally {
    clearInterval(sampler);
  }
  const seconds = (performance.now() - started) / 1000;
  const growth = (rssMax - rssBefore) / MiB;
  console.log(`1 GiB in ${seconds.toFixed(2)} s (${(1024 / seconds).toFixed(0)} MiB/s), RSS growth ${growth.toFixed(1)} MiB`);
  // A buffered stream would grow by the GiB; the bound leaves room for the three parties' heaps, larger on Node 26
  // (114 MiB seen there, under 100 on Node 20).
  expect(growth).toBeLessThan(160);
  const [line] = await p.waitForAccessLogs(1);
  expect(line).toMatchObject({ end: 'done', bytesIn: GiB, bytesOut: String(GiB).length + 1 });
});
