/**
 * Stable codes of the log lines that tools count or wait on (the chaos run, the harness, log queries): each such
 * line carries its code in the `code` field, and the code stays when the wording changes. docs/operating.md lists
 * them (test/log-codes.test.ts checks that table against this one).
 */
export const LOG_CODES = {
  webListening: 'FD_WEB_LISTENING',
  workerPolling: 'FD_WORKER_POLLING',
  workerDrained: 'FD_WORKER_DRAINED',
  workerStopped: 'FD_WORKER_STOPPED',
  formStored: 'FD_FORM_STORED',
  duplicateDelivery: 'FD_DUPLICATE_DELIVERY',
  invalidMoved: 'FD_INVALID_MOVED',
  storeFailed: 'FD_STORE_FAILED',
  pollBackoff: 'FD_POLL_BACKOFF',
  readinessDatabaseUnreachable: 'FD_READINESS_DB_UNREACHABLE',
  livenessFailed: 'FD_LIVENESS_FAILED',
  livenessRecovered: 'FD_LIVENESS_RECOVERED',
  shortSecretAllowed: 'FD_SHORT_SECRET_ALLOWED',
} as const;

export type LogCode = (typeof LOG_CODES)[keyof typeof LOG_CODES];
