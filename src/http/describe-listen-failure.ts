/** Where the server was asked to listen. */
export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * One line for an operator whose server could not listen, naming the setting to change: these
 * are configuration mistakes, and a stack trace would only hide the one fact that matters.
 */
export function describeListenFailure(error: NodeJS.ErrnoException, { host, port }: ListenAddress): string {
  switch (error.code) {
    case 'EADDRINUSE':
      return `port ${port} is already in use on ${host}; set PORT`;
    case 'EACCES':
      return `no permission to listen on port ${port} on ${host} (ports below 1024 need privileges); set PORT`;
    case 'EADDRNOTAVAIL':
      return `cannot listen on ${host}: it is not an address of this machine; set HOST`;
    case 'ENOTFOUND':
      return `cannot listen on ${host}: no such host; set HOST`;
    default:
      return `cannot listen on port ${port} on ${host}: ${error.message}`;
  }
}
