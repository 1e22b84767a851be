// Errors of the control plane, worded as ipvsadm (libipvs's ipvs_strerror) words the same case.
// `code` is the errno the kernel would have returned, so the CLI can map it to ipvsadm's exit code.

export type XvsErrorCode = 'EEXIST' | 'ESRCH' | 'ENOENT' | 'EINVAL' | 'ERANGE' | 'ENOSPC' | 'EOPNOTSUPP' | 'EBUSY';

export class XvsError extends Error {
  constructor(
    readonly code: XvsErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'XvsError';
  }
}

export const errors = {
  serviceExists: () => new XvsError('EEXIST', 'Service already exists'),
  noService: () => new XvsError('ESRCH', 'No such service'),
  serviceNotDefined: () => new XvsError('ESRCH', 'Service not defined'),
  destExists: () => new XvsError('EEXIST', 'Destination already exists'),
  noDest: () => new XvsError('ENOENT', 'No such destination'),
  noScheduler: (name: string) => new XvsError('ENOENT', `Scheduler not found: ${name}`),
  invalid: (what: string) => new XvsError('EINVAL', what),
  range: (what: string) => new XvsError('ERANGE', what),
  busy: (what: string) => new XvsError('EBUSY', what),
  full: (what: string) => new XvsError('ENOSPC', what),
  unsupported: (what: string) => new XvsError('EOPNOTSUPP', what),
};
