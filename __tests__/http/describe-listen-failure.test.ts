import { describeListenFailure } from '../../src/http/describe-listen-failure';

/** An error as `listen` emits it: errno code and Node's message. */
function listenError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code, syscall: 'listen' });
}

// Every listen failure is one line that names the setting to change; the end-to-end cases
// (a port in use, a foreign HOST) run against the real process in __tests__/main.test.ts.
test.each<[string, NodeJS.ErrnoException, string, number, string]>([
  ['a port in use', listenError('EADDRINUSE', 'listen EADDRINUSE: address already in use 0.0.0.0:3000'), '0.0.0.0', 3000, 'port 3000 is already in use on 0.0.0.0; set PORT'],
  [
    'a privileged port',
    listenError('EACCES', 'listen EACCES: permission denied 0.0.0.0:80'),
    '0.0.0.0',
    80,
    'no permission to listen on port 80 on 0.0.0.0 (ports below 1024 need privileges); set PORT',
  ],
  [
    'a HOST that is not on this machine',
    listenError('EADDRNOTAVAIL', 'listen EADDRNOTAVAIL: address not available 192.0.2.1'),
    '192.0.2.1',
    3000,
    'cannot listen on 192.0.2.1: it is not an address of this machine; set HOST',
  ],
  [
    'a HOST name that does not resolve',
    Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.invalid'), { code: 'ENOTFOUND', syscall: 'getaddrinfo' }),
    'nowhere.invalid',
    3000,
    'cannot listen on nowhere.invalid: no such host; set HOST',
  ],
  [
    'anything else',
    listenError('EMFILE', 'listen EMFILE: too many open files'),
    '0.0.0.0',
    3000,
    'cannot listen on port 3000 on 0.0.0.0: listen EMFILE: too many open files',
  ],
])('%s', (_name, error, host, port, line) => {
  expect(describeListenFailure(error, { host, port })).toBe(line);
});
