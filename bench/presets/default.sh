# bench/run.sh preset "default": this 2-core VM, whole run under 15 minutes.
# Sizes are bytes with K/M/G suffixes (powers of 1024).  Sourced by run.sh.
RUNS=3                      # repetitions of every measurement (median reported)

DISK_SIZE=1G                # disk_uring file
DISK_SECONDS=2              # random-read duration

RAW_SIZE=1G                 # raw view scanned through the mount and as a plain file
RAW_PAGE_SIZE=1M            # umapfs page size for the raw scans
RAW_BUFFER=2G               # fits the file: warm runs are kernel-cache hits
RAW_TOUCHES=20000           # random 4 KiB touches per random scan

GRAPH_SCALE=20              # R-MAT 2^20 vertices, edgefactor 16: 128 MiB CSR
GRAPH_EDGEFACTOR=16
BFS_THREADS=2
BFS_ROOTS=4
BFS_PAGE_SIZE=64K           # umapfs page size for the side-by-side BFS
BFS_BUFFER=512M             # fits the graph

SWEEP_FRAMES_FIT=24         # nights for the sweep: one that fits SWEEP_BUFFER ...
SWEEP_FRAMES_BIG=96         # ... and one four times larger
SWEEP_WIDTH=512
SWEEP_HEIGHT=512
SWEEP_BUFFER=32M
SWEEP_PAGE_SIZE=1M
SWEEP_VECTORS=500
SWEEP_RUNS=1                # the big night thrashes through a small buffer: one run each
SWEEP_TIMEOUT=150

# The page-size study (BFS and the sweep, cold, fresh mount per run).
STUDY_PAGE_SIZES="4K 16K 64K 256K 1M 4M"
STUDY_BFS_BUFFERS="64M 512M"          # half the graph, and all of it
STUDY_SWEEP_BUFFERS="8M 32M"
STUDY_RUNS=1                          # repetitions per study point
STUDY_SWEEP_PAGE_SIZES="16K 256K 4M"  # the sweep's study points (each regenerates the night)
STUDY_TIMEOUT=40                      # seconds; a study point that takes longer is recorded as a timeout
