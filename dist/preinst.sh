#!/bin/sh
# Creates the system user the agent runs as (weir.service: User=weir).
set -e
if ! getent passwd weir >/dev/null; then
	useradd --system --user-group --home-dir /var/lib/weir --no-create-home \
		--shell /usr/sbin/nologin --comment "weir load balancer agent" weir
fi
