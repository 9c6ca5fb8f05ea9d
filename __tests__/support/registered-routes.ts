import type { Express } from 'express';

/** A route as Express holds it: `all` for `router.all()` (the 405 answers), else a method in lower case. */
export interface RegisteredRoute {
  method: string;
  /** In OpenAPI's form: `/api/chats/{chatId}`. */
  path: string;
}

/** Middleware mounted on a path of its own (not `/`): it may answer requests no route lists. */
export interface MountedMiddleware {
  path: string;
  name: string;
}

/** What router 2.x (Express 5) keeps of each `use`, `route` and method call. */
interface Layer {
  rawPath?: string | string[] | RegExp;
  route?: { path: string | string[]; methods: Record<string, boolean | undefined> };
  handle: { name: string; length: number; stack?: Layer[] };
}

/**
 * Every route of `app` and every middleware mounted on a path, read from its router's layers and,
 * recursively, from the routers mounted in it (`app.use('/v1', router)`): a layer's `rawPath` is
 * the path it was registered with.
 */
export function registeredRoutes(app: Express): { routes: RegisteredRoute[]; middleware: MountedMiddleware[] } {
  const routes: RegisteredRoute[] = [];
  const middleware: MountedMiddleware[] = [];
  const walk = (stack: Layer[], prefix: string) => {
    for (const layer of stack) {
      if (layer.route) {
        for (const path of [layer.route.path].flat()) {
          for (const method of Object.keys(layer.route.methods)) {
            routes.push({ method: method === '_all' ? 'all' : method, path: openApiPath(join(prefix, path)) });
          }
        }
        continue;
      }
      for (const path of paths(layer)) {
        if (layer.handle.stack) walk(layer.handle.stack, join(prefix, path));
        // Error handlers answer no request of their own.
        else if (layer.handle.length !== 4 && path !== '/') middleware.push({ path: join(prefix, path), name: layer.handle.name || '<anonymous>' });
      }
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack, '');
  return { routes, middleware };
}

function paths(layer: Layer): string[] {
  const raw = layer.rawPath ?? '/';
  if (raw instanceof RegExp) throw new Error(`a layer mounted on a regular expression (${raw}): teach registeredRoutes to read it`);
  return [raw].flat();
}

function join(prefix: string, path: string): string {
  const joined = `${prefix.replace(/\/$/, '')}${path === '/' ? '' : path}`;
  return joined === '' ? '/' : joined;
}

/** `/api/chats/:chatId` as `/api/chats/{chatId}`; any other pattern syntax is refused, so that none goes unseen. */
function openApiPath(path: string): string {
  if (/[*?(){}]/.test(path)) throw new Error(`route path ${path}: only plain segments and :parameters are understood`);
  return path.replace(/:(\w+)/g, '{$1}');
}
