# CoreDNS for the real node, from the binary `cluster.sh build` compiles from its Go module.
FROM scratch
COPY coredns /coredns
USER 65532:65532
EXPOSE 53/udp 53/tcp
ENTRYPOINT ["/coredns"]
