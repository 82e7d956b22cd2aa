# The registry, and the example service and caller of the disaster drills,
# in one image built FROM scratch around static binaries. Build the
# binaries first (scripts/drill.sh build does):
#   CGO_ENABLED=0 go build -o deploy/bin/registry ./cmd/registry   (and ./examples/echo, ./examples/caller)
FROM scratch
COPY deploy/bin/registry deploy/bin/echo deploy/bin/caller /usr/local/bin/
COPY --chown=65534:65534 deploy/empty/ /data/
USER 65534:65534
WORKDIR /data
ENTRYPOINT ["/usr/local/bin/registry"]
