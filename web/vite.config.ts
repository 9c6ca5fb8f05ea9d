import { defineConfig } from 'vite';

/**
 * The chat page: `vite build --config web/vite.config.ts` writes dist/web (index.html + hashed
 * assets/), which the service serves at `/`. For development, `vite --config web/vite.config.ts`
 * serves the page and forwards /api to a running service (API_ORIGIN, default localhost:3000).
 */
export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  // Vite 8 transforms TSX with Oxc itself: no React plugin needed (and no fast refresh).
  oxc: { jsx: { runtime: 'automatic' } },
  resolve: {
    alias: [{ find: /^zod\/v3$/, replacement: `${import.meta.dirname}/shims/zod-v3.ts` }],
  },
  build: {
    outDir: '../dist/web',
    emptyOutDir: true,
    assetsDir: 'assets',
    // The page's CSP has no 'unsafe-inline': never inline a script or a style as a data: URL.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: 'es2022',
  },
  server: {
    proxy: { '/api': { target: process.env.API_ORIGIN ?? 'http://localhost:3000', changeOrigin: true } },
  },
});
