# syntax=docker/dockerfile:1
# (The syntax line enables BuildKit features such as the npm cache mount below.)

# ---------------------------------------------------------------------------------------------
# Build stage: install every dependency, generate the Prisma client, compile TypeScript, then
# drop the dev dependencies so the runtime stage can copy node_modules as is.
# ---------------------------------------------------------------------------------------------
FROM node:24-bookworm-slim AS build

# better-sqlite3 is a native addon. npm first tries to download a prebuilt binary; when none is
# reachable (offline builder, unusual platform) it compiles from source with node-gyp, which
# needs python3, make and a C++ compiler. They stay in this stage only.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*

# When node-gyp compiles, use the headers shipped in the image (/usr/local/include/node) instead
# of downloading them from nodejs.org, so a source build also works without network access.
ENV npm_config_nodedir=/usr/local

WORKDIR /app

# Manifests first: this layer (the slow one) is rebuilt only when dependencies change.
# package.json also carries `allowScripts`, which lets better-sqlite3 run its install script.
COPY package.json package-lock.json ./
# The cache mount keeps downloaded tarballs between builds without putting them in a layer.
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund

# Sources needed by `npm run build`: the generator wrapper and Prisma schema/config for
# `npm run generate`, the tsconfigs and src/ for tsc. config/ and prisma/migrations/ are read by
# the server at run time and copied from here into the runtime stage.
COPY tsconfig*.json prisma.config.ts ./
COPY scripts ./scripts
COPY prisma ./prisma
COPY config ./config
COPY src ./src
# The chat page's sources: `npm run build` bundles them with Vite into dist/web.
COPY web ./web

# generate (the Prisma clients into src/store/generated/<engine>) + tsc -p tsconfig.build.json -> dist/
# + vite build -> dist/web (the chat page served at /)
RUN npm run build

# Keep only production dependencies (express, openai, Prisma's pg adapter and pg, better-sqlite3
# with its compiled binary, ...). Pruning keeps the binary built above: no second compile.
# --omit=optional too: npm keeps dev dependencies that are also optional peers of a production
# package (the prisma CLI, typescript, ...), about 250 MB; no production package needs them.
RUN npm prune --omit=dev --omit=optional --no-audit --no-fund

# ---------------------------------------------------------------------------------------------
# Runtime stage: no compilers, no dev dependencies, no sources; runs as the unprivileged `node`
# user that the official image provides.
# ---------------------------------------------------------------------------------------------
FROM node:24-bookworm-slim AS runtime

ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATABASE_URL=file:/app/data/chat.db

WORKDIR /app

# Only what the server reads at run time. The SQL migrations are applied by the server itself
# at start-up (no Prisma CLI in the image); config/default.toml is resolved from /app.
COPY --from=build --chown=node:node /app/package.json ./package.json
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
COPY --from=build --chown=node:node /app/prisma/migrations ./prisma/migrations
COPY --from=build --chown=node:node /app/prisma/postgresql/migrations ./prisma/postgresql/migrations
COPY --from=build --chown=node:node /app/config ./config

# The SQLite database (plus its -wal/-shm files) lives here. Creating the folder before VOLUME
# makes a fresh named volume start out owned by `node`, so the non-root server can write to it.
RUN mkdir -p /app/data && chown node:node /app/data
VOLUME /app/data

USER node

EXPOSE 3000

# Ready = the process answers and the database is reachable. Uses Node's global fetch, so the
# image needs no curl/wget. Shell form so that ${PORT:-3000} follows a PORT set at `docker run`.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD node -e "fetch('http://127.0.0.1:${PORT:-3000}/readyz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"

# Exec form: node is PID 1 and receives SIGTERM directly, which the server handles by draining
# open streams before exiting. Migrations run inside the app at start-up.
CMD ["node", "dist/main.js"]
