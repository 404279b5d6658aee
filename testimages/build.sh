#!/bin/sh
# Builds the local test images (nothing is pulled: FROM scratch + a static binary).
#   kelpie-test/tool:latest   testimages/tool/tool.c, see its header for the modes
# Skips the build when the image already carries the source's checksum as a label.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src="$here/tool/tool.c"
sum=$( (cat "$src"; cat "$0") | sha256sum | cut -c1-16)
have=$(docker image inspect -f '{{ index .Config.Labels "kelpie-test.src" }}' kelpie-test/tool:latest 2>/dev/null || true)
if [ "$have" = "$sum" ]; then
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc=${CC:-gcc}
"$cc" -static -O2 -o "$tmp/tool" "$src"
cat > "$tmp/Dockerfile" <<DOCKERFILE
FROM scratch
COPY tool /tool
LABEL kelpie-test.src=$sum
ENTRYPOINT ["/tool"]
CMD ["sleep"]
DOCKERFILE
DOCKER_BUILDKIT=0 docker build -q -t kelpie-test/tool:latest "$tmp" >/dev/null 2>&1 || docker build -q -t kelpie-test/tool:latest "$tmp" >/dev/null
echo "built kelpie-test/tool:latest ($sum)"
