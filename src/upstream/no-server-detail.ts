/**
 * Why no server of an upstream could take a request, in a few words for the 503's access line: "no available
 * server" alone leaves a new user guessing (issue #16: the packaged example answers 503 in a container), while
 * "3 servers: 3 failing active health checks" says where to look.
 */
import type { Host, HostState } from './host.js';

const WORDS: Record<Exclude<HostState, 'healthy'>, string> = {
  unhealthy: 'failing active health checks',
  ejected: 'ejected by outlier detection',
  draining: 'draining',
  disabled: 'disabled',
};

export function noServerDetail(hosts: readonly Host[], now: number): string {
  if (hosts.length === 0) return 'no available server (the upstream has no servers)';
  const counts = new Map<HostState, number>();
  for (const h of hosts) {
    const state = h.state(now);
    counts.set(state, (counts.get(state) ?? 0) + 1);
  }
  const parts = (Object.keys(WORDS) as (keyof typeof WORDS)[]).filter((s) => counts.has(s)).map((s) => `${counts.get(s)} ${WORDS[s]}`);
  const healthy = counts.get('healthy') ?? 0;
  // Healthy ones that were still not picked: at their connection limit, or already tried by this request.
  if (healthy > 0) parts.push(`${healthy} healthy but busy or already tried`);
  return `no available server (${hosts.length} server${hosts.length === 1 ? '' : 's'}: ${parts.join(', ')})`;
}
