#!/usr/bin/env bash
# Starts a Docker engine on this machine and builds the image the docker
# backend's tests run, so that `go test ./docker/...` has a real engine to
# hold the conformance suite to (Docker is the oracle, DESIGN section 10).
#
# Idempotent: it installs only what is missing, starts the daemon only if
# none answers, and builds the image only if it is absent. It needs root
# (apt-get, dockerd). Nothing can be pulled here, so the image is made with
# `docker import` from Debian's static busybox.
set -euo pipefail

log=${GANTRY_DOCKERD_LOG:-/var/log/gantry-dockerd.log}
image=busybox:latest
# Bumped whenever the image's contents change, so that a machine with an
# older build gets the new one. It is kept in the image's comment, not in a
# label or the environment: Docker copies those into every container.
build="gantry test image, build 3"

# Debian's docker.io puts its client in /usr/bin; a newer client may come
# first on PATH (/usr/local/bin/docker). Either talks to the 20.10 daemon,
# since the client negotiates the API version down, but prefer the one that
# ships with the daemon so its version matches.
client() {
	if [ -x /usr/bin/docker ]; then
		/usr/bin/docker "$@"
	else
		docker "$@"
	fi
}

if ! command -v dockerd >/dev/null || [ ! -x /bin/busybox ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends docker.io busybox-static >/dev/null
fi

if ! client info >/dev/null 2>&1; then
	# No bridge and no iptables: this machine has neither the privileges
	# nor the network for them, and the tests run containers with network
	# "none". vfs needs no overlay support from the kernel.
	nohup dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
		>>"$log" 2>&1 </dev/null &
	for _ in $(seq 1 60); do
		if client info >/dev/null 2>&1; then
			break
		fi
		sleep 1
	done
	if ! client info >/dev/null 2>&1; then
		echo "docker-engine.sh: dockerd did not answer within 60 s; its log ($log) ends:" >&2
		tail -n 30 "$log" >&2 || true
		exit 1
	fi
fi

if [ "$(client image inspect --format '{{.Comment}}' "$image" 2>/dev/null)" != "$build" ]; then
	root=$(mktemp -d)
	trap 'rm -rf "$root"' EXIT
	# mktemp's 0700 would become the image's /, which a user other than
	# root could not enter: not even to reach the init.
	chmod 755 "$root"
	mkdir -p "$root/bin"
	cp /bin/busybox "$root/bin/busybox"
	# One symlink per applet, so that sh, echo, sleep, cat... resolve as in
	# the busybox image on Docker Hub.
	for applet in $(/bin/busybox --list); do
		if [ "$applet" != busybox ]; then
			ln -s busybox "$root/bin/$applet"
		fi
	done
	mkdir -p "$root/tmp" "$root/etc"
	chmod 1777 "$root/tmp"
	# id, ls -l and ps name users and groups from these; the nobody user
	# lets tests run as 65534 by name as well as by number.
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
	tar -C "$root" -c . | client import --change 'ENV PATH=/bin' --message "$build" - "$image" >/dev/null
	echo "docker-engine.sh: built $image from $(/bin/busybox | head -n 1)"
fi
client version --format 'docker-engine.sh: engine {{.Server.Version}}, API {{.Server.APIVersion}}'
