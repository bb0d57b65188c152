/** The retry policy's decisions, counted per upstream in the contract's metrics. */
import type { Metrics } from '../admin/metrics.js';
import type { RetryCounters } from './retry-policy.js';

export function retryCounters(metrics: Metrics, upstream: string): RetryCounters {
  return {
    retried: (reason) => metrics.retries.inc({ upstream, reason }),
    skipped: (reason) => metrics.retriesSkipped.inc({ upstream, reason }),
    overflowed: () => metrics.overflows.inc({ upstream, limit: 'max_retries' }),
  };
}
