/** The entry point node:cluster forks (supervisor.ts sets it as `exec`): one worker. */
import { runWorker } from './worker.js';

runWorker();
