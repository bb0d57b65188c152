/** Ballast as a library: start a proxy from a validated config, in-process (the CLI does exactly this). */
export { Ballast, type BallastOptions } from './ballast.js';
export { parseConfig, loadConfigFile, formatConfigErrors, type ConfigError, type LoadResult } from './config/load.js';
export type { Config, UpstreamConfig, ListenerConfig } from './config/schema.js';
export { strategyFor } from './balancer/index.js';
export type { Strategy, Picker, BalancedHost, BalanceName } from './balancer/types.js';
export { configJsonSchema } from './config/json-schema.js';
export { createLogger, type Logger } from './log.js';
