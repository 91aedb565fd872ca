# The api binary in a distroless image. Build: docker build -t saasbase .
# Run:   docker run --rm -p 8080:8080 -e DATABASE_URL=... -e APP_DATABASE_URL=... -e REDIS_URL=... \
#          -e JWT_SIGNING_KEY=... -e WEBHOOK_SECRET_KEY=... saasbase [serve|migrate up|token ...]
# (run `migrate up` once first; APP_DATABASE_URL names app_runtime with its password, which `migrate up` sets.
# The keys are base64 of 32 random bytes: openssl rand -base64 32. docker compose does all this
# in development: see docker-compose.yml.)

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so this layer is reused while only the code changes.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/api ./cmd/api

# static-debian12 carries CA certificates and tzdata (tenant time zones), and no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/api /api
# An image is for deploying: without keys of its own it refuses to start rather than sign
# tokens with the public development key. docker compose sets APP_ENV=development.
ENV APP_ENV=production
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/api"]
CMD ["serve"]
