# syntax=docker/dockerfile:1

# Build: a static binary with the time zone database embedded (teams and reps have
# IANA time zones; the runtime image needs no tzdata).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -tags timetzdata -ldflags="-s -w" -o /out/pipewatch ./cmd/pipewatch

# Run: no shell, no package manager, an unprivileged user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pipewatch /usr/local/bin/pipewatch
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/pipewatch"]
CMD ["worker"]
