// The package's public API: the balancer, the real servers' decapsulator, errors, and the typed
// libbpf binding for tools that want the maps or programs themselves.
export * from './balancer.js';
export { attachDecap, type DecapHandle, type DecapOptions, type DecapAttachOptions } from './decap.js';
export { XvsError, type XvsErrorCode } from './errors.js';
export * as libbpf from './libbpf.js';
