# syntax=docker/dockerfile:1
# Production image on the current Node LTS: the TypeScript is compiled in its own stage, the
# production dependencies are installed in another (no dev packages, no compiler, no TypeScript loader),
# and the image runs the built JavaScript as the unprivileged `node` user. The same image runs
# the API (`dist/api/main.js`, the default), a worker (`dist/worker/main.js`) or a storage node
# (`dist/node/main.js`).
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json main.ts ./
COPY shared ./shared
COPY api ./api
COPY worker ./worker
COPY node ./node
COPY cli ./cli
RUN npm run build

FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build, and the build is the other stage's; the native
# packages (msgpackr-extract, zstd, blake3) load their prebuilt binaries at run time. lmdb's
# addon is built here from its sources with a fix (scripts/lmdb-native.mjs, docs/lmdb.md), by
# this stage's Node, which is the final image's: the compiler stays in this stage.
COPY scripts/lmdb-native.mjs ./scripts/
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends build-essential python3 \
 && npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && node scripts/lmdb-native.mjs \
 && rm -rf node_modules/lmdb/build/Release/obj.target node_modules/lmdb/build/Release/.deps /var/lib/apt/lists/*

FROM node:24-bookworm-slim
# GLIBC_TUNABLES: the allocator settings of package.json's `config.glibcTunables` (README,
# "Memory allocator"), which `npm start` and the other scripts give every process.
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080 GRPC_PORT=50051 DATA_DIR=/data BACKUP_FILESYSTEM_PATH=/backups \
    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4194304:glibc.malloc.trim_threshold=1048576:glibc.malloc.arena_max=2
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
RUN mkdir -p /data /backups && chown node:node /data /backups
USER node
EXPOSE 8080 50051 7001
CMD ["node", "dist/api/main.js"]
