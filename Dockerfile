# Builds the reverb image from source, anywhere Docker or Podman runs:
#   docker build -t reverb --build-arg VERSION=$(git describe --always) .
# The result is FROM scratch: the static binary, CA certificates (for
# rediss:// Redis), a writable state directory and /tmp, nothing else.
# Dockerfile.static packages an already built bin/reverb the same way.

# The build stage runs on the builder's own platform and cross-compiles
# (the binary is pure Go): docker buildx build --platform linux/arm64 .
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /rootfs/reverb ./cmd/reverb \
 && mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp /rootfs/var/lib/reverb \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && chmod 1777 /rootfs/tmp \
 && chown 65532:65532 /rootfs/var/lib/reverb

FROM scratch
COPY --from=build /rootfs/ /
# reverb start keeps the development app and reverb restart's stamp here;
# mount a volume on it to keep them across containers.
ENV REVERB_STATE_DIR=/var/lib/reverb
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/reverb"]
CMD ["start"]
