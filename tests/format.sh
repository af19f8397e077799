#!/usr/bin/env bash
# format.sh - checks that every C source and header is formatted as
# .clang-format says (clang-format from Debian 12, version 14); lists the
# files that are not and exits 1. With --fix, formats them in place instead.
#
#   tests/format.sh [--fix]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

FIX=0
case "${1:-}" in
--fix) FIX=1 ;;
"") ;;
*) echo "format.sh: unknown argument '$1' (usage: tests/format.sh [--fix])" >&2; exit 2 ;;
esac
if ! command -v clang-format >/dev/null; then
    echo "format.sh: FAILED: clang-format is not installed (Debian: apt-get install clang-format)" >&2
    exit 1
fi
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    mapfile -t files < <(git ls-files '*.c' '*.h')
else
    mapfile -t files < <(find . -path ./build\* -prune -o \( -name '*.c' -o -name '*.h' \) -print | sort)
fi
bad=0
for f in "${files[@]}"; do
    if [ $FIX -eq 1 ]; then
        clang-format -i "$f"
    elif ! clang-format "$f" | cmp -s - "$f"; then
        echo "not formatted: $f (see: clang-format $f | diff $f -)"
        bad=$((bad + 1))
    fi
done
if [ $bad -gt 0 ]; then
    echo "format.sh: $bad of ${#files[@]} files differ from clang-format; tests/format.sh --fix formats them"
    exit 1
fi
echo "format.sh: ${#files[@]} files formatted"
