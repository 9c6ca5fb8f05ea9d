/**
 * The service must not start, for a reason the operator has to fix: a setting or variable is
 * missing or invalid, or what it names is unusable (a database another server owns). Shown as one
 * message, without a stack.
 */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
