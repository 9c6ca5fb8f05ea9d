import type { Express, NextFunction, Request, Response } from 'express';
import type { ServiceMetrics } from '../metrics/service-metrics';
import { matchRoute } from './match-route';

/** The label of requests no route matches (404s, static files): one value, never the path. */
const UNMATCHED = 'unmatched';

/**
 * Counts each request and its duration once its response has ended (or its connection closed),
 * labelled with its method, the pattern of its route and its status.
 */
export function httpMetrics(metrics: ServiceMetrics, app: Express) {
  return (request: Request, response: Response, next: NextFunction): void => {
    const started = process.hrtime.bigint();
    let counted = false;
    const count = () => {
      if (counted) return;
      counted = true;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.httpRequestEnded(request.method, routeOf(app, request), response.statusCode, seconds);
    };
    response.once('finish', count);
    response.once('close', count);
    next();
  };
}

/**
 * The pattern of the route a request's path matches. Matched again rather than read from
 * `request.route`: a request refused by the key check or the body parser never reached its route,
 * and once an error leaves a mounted router, `request.baseUrl` no longer says where it was.
 */
function routeOf(app: Express, request: Request): string {
  return matchRoute(app, pathOf(request.originalUrl)) ?? UNMATCHED;
}

function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}
