# shellcheck shell=bash
# bench/mem.sh: the memory of a umapfs mount, for bench/run.sh and the bench
# scripts (sourced; bash).
#
#   mem_start FILE STATE   sample the bytes of FILE resident in the kernel page
#                          cache (fincore) every MEM_INTERVAL seconds (default
#                          0.5) in the background, keeping the maximum in the
#                          file STATE; sets MEM_SAMPLER (its pid)
#   mem_now FILE PID STATE prints "PEAK_RSS PEAK_KCACHE" in bytes so far: the
#                          VmHWM of process PID (the daemon) and the largest of
#                          the samples and a fresh one
#   mem_stop               stops the sampler (and waits until it no longer has
#                          FILE open)
#   umapfs_pid MNT         the pid of the umapfs daemon serving mount point MNT
#                          (the process whose command line has MNT as an
#                          argument), or nothing
#
# fincore opens FILE (at most 5 s per call: a stuck mount must not hang the
# caller); umapfs opens views with keep_cache, so sampling does not drop the
# view's cached pages.  Call mem_now before the daemon exits (before
# unmounting): VmHWM goes with the process.

MEM_SAMPLER=

mem_start() {
	local f=$1 state=$2
	echo 0 >"$state"
	(
		# on TERM, finish the fincore in progress (it holds FILE open: an
		# unmount right after mem_stop would fail with EBUSY), stop the
		# sleep (none yet if TERM comes first: $! unset), then exit
		trap '[ -z "${!:-}" ] || kill "$!" 2>/dev/null; exit 0' TERM
		max=0
		while :; do
			r=$(timeout -k 1 5 fincore --bytes --noheadings --output RES "$f" 2>/dev/null || echo 0)
			if [ "${r:-0}" -gt "$max" ] 2>/dev/null; then
				max=$r
				echo "$max" >"$state.tmp" && mv -f "$state.tmp" "$state"
			fi
			sleep "${MEM_INTERVAL:-0.5}" &
			wait $! || kill $! 2>/dev/null
		done
	) &
	MEM_SAMPLER=$!
}

mem_now() {
	local f=$1 pid=$2 state=$3 k r
	k=$(timeout -k 1 5 fincore --bytes --noheadings --output RES "$f" 2>/dev/null || echo 0)
	r=$(cat "$state" 2>/dev/null || echo 0)
	[ "${r:-0}" -gt "${k:-0}" ] 2>/dev/null && k=$r
	r=$(awk '/^VmHWM/ {print $2 * 1024}' "/proc/$pid/status" 2>/dev/null || echo 0)
	echo "${r:-0} ${k:-0}"
}

mem_stop() {
	if [ -n "$MEM_SAMPLER" ]; then
		kill "$MEM_SAMPLER" 2>/dev/null || true
		wait "$MEM_SAMPLER" 2>/dev/null || true
	fi
	MEM_SAMPLER=
	return 0
}

umapfs_pid() {
	local mnt=$1 c p a args
	for c in /proc/[0-9]*/cmdline; do
		args=()
		mapfile -d '' -t args <"$c" 2>/dev/null || continue
		[ ${#args[@]} -gt 1 ] || continue
		case "${args[0]}" in *umapfs) ;; *) continue ;; esac
		for a in "${args[@]:1}"; do
			if [ "$a" = "$mnt" ]; then
				p=${c#/proc/}
				echo "${p%/cmdline}"
				return 0
			fi
		done
	done
	return 0
}
