# The pool resource image, and the task image for `poolboy clean`: one static binary,
# git and ssh, and /opt/resource/{check,in,out} as links to the binary (it acts as the
# script it is invoked as).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/poolboy-ci/poolboy/internal/cli.Version=${VERSION}" \
      -o /out/poolboy ./cmd/poolboy

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/poolboy /usr/local/bin/poolboy
RUN mkdir -p /opt/resource \
 && for script in check in out; do ln -s /usr/local/bin/poolboy /opt/resource/$script; done
ENTRYPOINT ["/usr/local/bin/poolboy"]
