import pino, { type DestinationStream, type Logger } from 'pino';

/** Paths never written to the log: credentials in headers and provider settings. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["api-key"]',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  '*.apiKey',
  'apiKey',
];

/** The service's root logger: JSON lines, credentials redacted. `destination` is for tests. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'llm-streaming-service' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    },
    // Synchronous by default so that no line is lost or reordered when the process exits.
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
