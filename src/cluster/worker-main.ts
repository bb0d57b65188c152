/** The entry point node:cluster forks (src/cluster/primary.ts sets it as `exec`): one worker. */
import { runWorker } from './worker.js';

runWorker();
