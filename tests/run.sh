#!/bin/sh
# Build umapfs and run its whole test suite.
#   tests/run.sh              debug-optimized build in build/
#   tests/run.sh --sanitize   ASan+UBSan build in build-sanitize/
# Exit status 0 only if every test passed.  Skipped tests are listed and
# counted separately: a skip is never a pass.
set -eu
cd "$(dirname "$0")/.."

dir=build
setup_args=""
case "${1:-}" in
--sanitize)
	dir=build-sanitize
	setup_args="-Db_sanitize=address,undefined -Db_lundef=false"
	;;
"") ;;
*)
	echo "usage: tests/run.sh [--sanitize]" >&2
	exit 2
	;;
esac

if [ ! -f "$dir/build.ninja" ]; then
	# shellcheck disable=SC2086
	meson setup "$dir" -Dtests=enabled $setup_args
fi
ninja -C "$dir"

status=0
meson test -C "$dir" --num-processes 2 --print-errorlogs || status=$?

/usr/bin/python3 - "$dir/meson-logs/testlog.json" <<'PY'
import json, re, sys
passed = failed = skipped = 0
skips = []
for line in open(sys.argv[1]):
    t = json.loads(line)
    out = t.get("stdout") or ""
    tap = [l for l in out.splitlines() if re.match(r"(not )?ok\b", l)]
    if not tap:
        r = t["result"]
        if r == "OK": passed += 1
        elif r == "SKIP": skipped += 1; skips.append(t["name"])
        else: failed += 1
        continue
    for l in tap:
        if l.startswith("not ok"): failed += 1
        elif "# SKIP" in l: skipped += 1; skips.append(t["name"] + ": " + l)
        else: passed += 1
    if t["result"] not in ("OK", "SKIP", "EXPECTEDFAIL"):
        failed += 1 if not any(l.startswith("not ok") for l in tap) else 0
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
for s in skips:
    print("  skipped:", s)
PY
exit $status
