#!/bin/sh
# Generate configure and Makefile.in (build outputs, not committed).
set -e
cd "$(dirname "$0")"
mkdir -p m4
autoreconf -fi
