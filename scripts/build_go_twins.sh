#!/usr/bin/env bash
# Build the Go 1.19 twins of the workload harnesses (benches/go: binarytrees, treechurn,
# msgbuf) into target/release/{binarytrees,treechurn,msgbuf}-go, for the side-by-side scripts.
# Exits 1, building nothing, where Go 1.19 is absent (/usr/lib/go-1.19/bin/go, or $GO;
# apt-get install golang-1.19-go), so that callers can leave Go's rows out.
set -euo pipefail
cd "$(dirname "$0")/.."
GO="${GO:-/usr/lib/go-1.19/bin/go}"
[ -x "$GO" ] || exit 1
cd benches/go
for twin in binarytrees treechurn msgbuf; do
  "$GO" build -o "../../target/release/$twin-go" "./$twin"
done
