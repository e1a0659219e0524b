# One image for the relay (default command) and the ingest worker (see docker-compose.yml). Node 20: the uWebSockets.js binaries target its ABI.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
COPY shared/package.json shared/
COPY relay/package.json relay/
COPY client/package.json client/
COPY ingest/package.json ingest/
RUN npm ci --omit=dev --no-audit --no-fund
COPY shared shared
COPY relay relay
COPY ingest ingest
COPY clickhouse clickhouse
USER node
EXPOSE 8080
CMD ["node", "--import", "tsx", "relay/src/main.ts"]
