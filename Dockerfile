# syntax=docker/dockerfile:1
# Production image: dependencies installed in their own stage (no dev packages), run as the
# unprivileged `node` user. The same image runs the API (`api/main.ts`) or a worker.
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080 DATA_DIR=/data BACKUP_FILESYSTEM_PATH=/backups
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json main.ts ./
COPY shared ./shared
COPY api ./api
COPY worker ./worker
COPY cli ./cli
COPY bin ./bin
RUN mkdir -p /data /backups && chown node:node /data /backups
USER node
EXPOSE 8080
CMD ["node", "--import", "tsx", "api/main.ts"]
