# pgmaitre: multi-stage build on the current Node.js LTS, running as a non-root user.
#
# The image carries a container configuration (docker/pgpool.conf, at /etc/pgmaitre/pgpool.conf):
# listeners on all addresses, backends named `primary` and `standby` as in docker/compose.yaml.
# Mount your own directory on /etc/pgmaitre to replace it; `pgmaitre check` tests it:
#   docker run --rm -v "$PWD/myconf:/etc/pgmaitre:ro" pgmaitre check -f /etc/pgmaitre/pgpool.conf
# Not buildable on the development machines (no Docker engine there); what it relies on is
# tested by test/integration/container.test.ts.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY test ./test
COPY bench ./bench
RUN npx tsc -p . && npm prune --omit=dev

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY bin ./bin
COPY docker/pgpool.conf /etc/pgmaitre/pgpool.conf
USER node
# clients, HTTP (status page, /metrics, /health); 9898 (PCP) once pcp_listen_addresses is set
EXPOSE 9999 8404
# GET /health on http_port: 200 while at least one backend is up (node images have no curl).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "bin/pgmaitre.js", "healthcheck", "-f", "/etc/pgmaitre/pgpool.conf"]
ENTRYPOINT ["node", "bin/pgmaitre.js"]
CMD ["-n", "-f", "/etc/pgmaitre/pgpool.conf"]
