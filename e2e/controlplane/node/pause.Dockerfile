# The pod sandbox ("pause") image of the real node: Kubernetes' own pause.c
# (build/pause/linux in the pinned k8s.io/kubernetes module), compiled statically by
# node.sh. Nothing can be pulled here, so containerd pins this one.
FROM scratch
COPY pause /pause
USER 65535:65535
ENTRYPOINT ["/pause"]
