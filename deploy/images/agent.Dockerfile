# periscope-agent: the binary and the shared libraries it links, nothing else
# (no shell, no package manager). scripts/images.sh assembles `rootfs/` from a
# binary built on the host, so the build pulls no base image.
FROM scratch
COPY rootfs/ /
# Root with every capability dropped but those the DaemonSet adds (deploy/k8s):
# reading other users' files takes DAC_READ_SEARCH, which a non-root user only
# gets through file capabilities, and no-new-privileges forbids those.
USER 0:0
ENTRYPOINT ["/periscope-agent"]
CMD ["--help"]
