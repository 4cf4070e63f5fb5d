#!/bin/sh
# Lets systemd see the new or changed unit. The service is not enabled or
# started: it needs /etc/weir/agent.env filled in first (README.md).
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
# An upgrade restarts a running agent on the new binary; the rules stay in
# place meanwhile, and the first pass replaces them in one transaction.
if [ "$1" = configure ] && [ -n "$2" ] && [ -d /run/systemd/system ]; then
	systemctl try-restart weir.service || true
fi
