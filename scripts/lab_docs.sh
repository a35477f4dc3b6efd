#!/usr/bin/env bash
# Put a gc-lab run into docs/benchmarks.md: copies the run's SVG plots into docs/img/lab/ (the
# old ones removed) and replaces the text between the "lab:begin" and "lab:end" markers with the
# run's report.md, its image links pointed there.
#
#   cargo run --release -p gc-lab -- --runs 3 --curves 25,50,100,200,400,800 --out target/lab
#   scripts/lab_docs.sh target/lab
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/lab_docs.sh OUT_DIR}
[ -s "$out/report.md" ] || { echo "no $out/report.md: run gc-lab first"; exit 1; }
grep -q '<!-- lab:begin -->' docs/benchmarks.md && grep -q '<!-- lab:end -->' docs/benchmarks.md ||
  { echo "docs/benchmarks.md has no lab:begin/lab:end markers"; exit 1; }
rm -rf docs/img/lab && mkdir -p docs/img/lab
cp "$out"/*.svg docs/img/lab/
sed -E 's#!\[([^]]*)\]\(([^)/]+\.svg)\)#![\1](img/lab/\2)#' "$out/report.md" > "$out/report-docs.md"
awk -v report="$out/report-docs.md" '
  /<!-- lab:begin -->/ { print; while ((getline line < report) > 0) print line; skip = 1; next }
  /<!-- lab:end -->/ { skip = 0 }
  !skip { print }
' docs/benchmarks.md > docs/benchmarks.md.new
mv docs/benchmarks.md.new docs/benchmarks.md
echo "docs/benchmarks.md: lab section replaced from $out ($(ls docs/img/lab | wc -l) plots)"
