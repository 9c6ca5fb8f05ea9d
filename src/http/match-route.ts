import type { Express } from 'express';

/** The parts of Express 5's router layers read here (router 2.x; not part of Express's typed API). */
interface Layer {
  route?: { path: string | string[] };
  handle: { stack?: Layer[] };
  rawPath?: string | string[];
  /** Mounted at '/': matches every path. */
  slash?: boolean;
  matchers: Array<(path: string) => { path: string } | false>;
}

/**
 * The pattern of the route that matches `path` in `app`, mounted routers included, as Express
 * matches them (whether or not its handler ran: a request refused before routing, by the key
 * check say, still gets its route's pattern), or undefined when no route does. The metrics label
 * requests with it, never with the raw path, which holds chat ids.
 */
export function matchRoute(app: Express, path: string): string | undefined {
  return find(stackOf(app), path, '');
}

function stackOf(app: Express): Layer[] {
  return (app as unknown as { router: { stack: Layer[] } }).router.stack;
}

function find(stack: Layer[], path: string, prefix: string): string | undefined {
  for (const layer of stack) {
    if (layer.route) {
      const index = layer.matchers.findIndex((matches) => matchesPath(matches, path));
      if (index !== -1) return prefix + [layer.route.path].flat()[index];
    } else if (layer.handle.stack) {
      // A router mounted at '/' takes every path whole (Express skips its matcher too).
      for (const matches of layer.slash ? [() => ({ path: '' })] : layer.matchers) {
        const match = matches(path);
        if (match === false) continue;
        const found = find(layer.handle.stack, path.slice(match.path.length) || '/', prefix + mountPath(layer));
        if (found) return found;
      }
    }
  }
  return undefined;
}

/**
 * True when `matches` takes `path`. A matcher throws when a parameter it matched is not valid
 * percent-encoding (`%E0`): the path did match, as Express also finds before answering 400.
 */
function matchesPath(matches: Layer['matchers'][number], path: string): boolean {
  try {
    return matches(path) !== false;
  } catch {
    return true;
  }
}

/** Where a router is mounted: '' for `app.use(router)`, '/v1' for `app.use('/v1', router)`. */
function mountPath(layer: Layer): string {
  const path = [layer.rawPath ?? '/'].flat()[0]!;
  return path === '/' ? '' : path;
}
