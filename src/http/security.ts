import cors from 'cors';
import type { RequestHandler } from 'express';
import helmet from 'helmet';

/**
 * Security headers for an API that serves only JSON and event streams: nothing may be framed,
 * sniffed or loaded as a page.
 */
export function securityHeaders(): RequestHandler {
  return helmet({
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    crossOriginResourcePolicy: { policy: 'same-origin' },
    frameguard: { action: 'deny' },
    // HSTS belongs to whatever terminates TLS in front of the service; this server speaks plain HTTP.
    strictTransportSecurity: false,
  });
}

/**
 * CORS for the configured origins: none by default; `*` allows any origin, never with
 * credentials (keys travel in the Authorization header, not in cookies).
 */
export function crossOrigin(origins: string[]): RequestHandler {
  const anyOrigin = origins.includes('*');
  return cors({
    origin: anyOrigin ? '*' : origins.length > 0 ? origins : false,
    credentials: false,
    methods: ['GET', 'POST', 'PATCH', 'DELETE'],
    allowedHeaders: ['Authorization', 'Content-Type', 'Last-Event-ID', 'X-Request-Id'],
    exposedHeaders: ['X-Request-Id', 'Retry-After', 'X-Vercel-AI-UI-Message-Stream'],
    maxAge: 600,
  });
}
