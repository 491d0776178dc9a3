# periscope (the server and CLI): the binary and the shared libraries it links,
# nothing else. scripts/images.sh assembles `rootfs/`; see agent.Dockerfile.
FROM scratch
COPY rootfs/ /
# The data directory, the server's: a named volume mounted there starts out owned by it.
COPY --chown=65532:65532 data/ /var/lib/periscope/
# Never root: the data directory is the only thing it writes.
USER 65532:65532
ENTRYPOINT ["/periscope"]
CMD ["--help"]
