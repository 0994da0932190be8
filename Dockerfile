# pgmaitre: multi-stage build on the current Node.js LTS, running as a non-root user.
# Mount a directory holding pgpool.conf (and pool_hba.conf, pool_passwd, pcp.conf) at
# /etc/pgmaitre. Not buildable on the development machines (no Docker engine there).

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
COPY conf /etc/pgmaitre
USER node
EXPOSE 9999 9898 8404
ENTRYPOINT ["node", "bin/pgmaitre.js"]
CMD ["-n", "-f", "/etc/pgmaitre/pgpool.conf"]
