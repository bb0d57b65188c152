/**
 * Peer: fastify 5 + @fastify/http-proxy (reply-from over undici), in its own process. The three origins sit behind
 * undici's BalancedPool, the multi-origin mode reply-from itself builds when given several bases.
 */
import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';
import { BalancedPool } from 'undici';

const origins = (process.env.BENCH_ORIGINS ?? '').split(',').filter(Boolean).map((p) => `http://127.0.0.1:${p}`);
const app = Fastify({ logger: false, bodyLimit: 16 * 1024 * 1024, keepAliveTimeout: 65_000 });
// WebSockets: the plugin relays messages (decoded and sent again) to its `upstream`, one origin; no balancing.
await app.register(proxy, { upstream: origins[0], undici: new BalancedPool(origins), websocket: true, wsClientOptions: { perMessageDeflate: false }, wsServerOptions: { perMessageDeflate: false } });
await app.listen({ host: '127.0.0.1', port: 0 });
process.send?.({ type: 'ready', port: app.server.address().port });
process.on('disconnect', () => process.exit(0));
process.on('message', (m) => {
  if (m?.type === 'stop') process.exit(0);
});
