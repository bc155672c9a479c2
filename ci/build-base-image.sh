#!/bin/sh
# The base image for builds without a registry: Debian bookworm minbase + python3, python3-venv, python3-pip,
# ca-certificates, from the mirror apt is configured with, imported as localhost/pybase:bookworm.
# Needs root, debootstrap and podman. ROOTFS (default: a temporary directory) is removed afterwards unless KEEP_ROOTFS=1.
set -eu
IMAGE=${IMAGE:-localhost/pybase:bookworm}
ROOTFS=${ROOTFS:-$(mktemp -d /tmp/pybase-rootfs.XXXXXX)}

# Same mirror apt on the host uses (deb822 first, then legacy sources.list).
MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
echo "mirror: $MIRROR"

if [ ! -x "$ROOTFS/usr/bin/python3" ]; then
  rm -rf "$ROOTFS"
  debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$ROOTFS" "$MIRROR"
fi

# apt sources inside the image (same mirror; security mirror derived from it)
rm -f "$ROOTFS/etc/apt/sources.list"
cat > "$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

# Keep it small: apt caches/lists, logs, docs (keep copyright), man, locales.
chroot "$ROOTFS" apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
       "$ROOTFS"/var/cache/debconf/*-old "$ROOTFS"/var/lib/dpkg/*-old \
       "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* \
       "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
       "$ROOTFS"/usr/share/locale/*
find "$ROOTFS"/usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
find "$ROOTFS" -name __pycache__ -type d -prune -exec rm -rf {} +
# host files copied by debootstrap; podman provides its own at run time
rm -f "$ROOTFS/etc/resolv.conf" "$ROOTFS/etc/hostname"

podman rmi -f "$IMAGE" >/dev/null 2>&1 || true
tar --numeric-owner -C "$ROOTFS" -c . | podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  - "$IMAGE"
podman image ls "$IMAGE"
[ "${KEEP_ROOTFS:-0}" = 1 ] || rm -rf "$ROOTFS"
