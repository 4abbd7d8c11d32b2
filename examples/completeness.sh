#!/bin/sh
# examples/completeness.sh BUILD_DIR WORKDIR [NIGHTS]
#
# Completeness against flux: plant movers at several fluxes in seeded synthetic
# nights (24 frames of 512x512, noise sigma 10, PSF sigma 1.5 px, 6 movers at
# each flux per night), run the exhaustive sweep on each, and print the
# fraction recovered at each flux.  Recovered = the best reported candidate
# whose start lies within 2 px of the mover at t0 has a velocity within half a
# grid step of the truth (umapfs-sweep --truth).  Also prints the fraction
# merely detected (some candidate within 2 px at t0).  Plain files: no mount.
set -eu
if [ $# -lt 2 ]; then
	echo "usage: $0 BUILD_DIR WORKDIR [NIGHTS]" >&2
	exit 2
fi
build=$(cd "$1" && pwd)
work=$2
nights=${3:-3}
fluxes=${FLUXES:-150,200,250,300,400,600,1000}
nf=$(echo "$fluxes" | tr ',' '\n' | wc -l)
mkdir -p "$work"
: > "$work/all.txt"
for s in $(seq 1 "$nights"); do
	d=$work/night-$s
	rm -rf "$d"
	"$build/examples/umapfs-mknight" --quiet --seed $((100 + s)) --movers $((6 * nf)) \
		--flux "$fluxes" "$d/frames" >/dev/null
	"$build/examples/umapfs-stitch" "$d/frames" "$d/nat" >/dev/null
	"$build/examples/umapfs-sweep" --quiet --exhaustive --vmin 4 --vmax 16 --top $((8 * nf)) \
		--no-samples --truth "$d/frames/truth.csv" --output "$d/cand.csv" "$d/nat/cube.f32" \
		> "$d/report.txt"
	# per mover: flux, detected (a candidate within 2 px), recovered
	awk '$NF == "recovered" || $NF == "off" || $NF == "missed" {
		print $2, ($NF != "missed"), ($NF == "recovered") }' "$d/report.txt" >> "$work/all.txt"
	rm -rf "$d/nat"
done
echo "flux  planted  detected  recovered  (nights: $nights; 24 frames 512x512, noise 10, PSF sigma 1.5)"
sort -n "$work/all.txt" | awk '
	{ n[$1]++; d[$1] += $2; r[$1] += $3; if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } }
	END { for (i = 1; i <= k; i++) { f = order[i];
		printf "%6.0f  %7d  %8.2f  %9.2f\n", f, n[f], d[f] / n[f], r[f] / n[f] } }'
