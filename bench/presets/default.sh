# bench/run.sh preset "default": this 2-core VM, whole run about 17 minutes.
# Sizes are bytes with K/M/G suffixes (powers of 1024); lists are space-separated.
# Sourced by run.sh, which checks that every variable is set (run.sh --dry-run).
RUNS=3                      # repetitions of every measurement (median reported)
TOOL_TIMEOUT=300            # seconds per engine_random / uffd_fault invocation

DISK_SIZE=1G                # disk_uring file
DISK_SECONDS=2              # random-read duration

# engine: random page reads through the engine vs O_DIRECT pread (engine_random)
ENGINE_SIZE=256M            # file, twice the buffer
ENGINE_BUFFER=128M
ENGINE_PAGE_SIZES="4K 64K 1M"
ENGINE_THREADS="2"          # thread counts (each at most 4)
ENGINE_MIB=16               # MiB per pass (at least 2000 pages up to 64K, 2 buffers from 256K)

# uffd: the userfaultfd mapping vs kernel mmap (uffd_fault); sizes in whole MiB
UFFD_FAULT_SIZE=16M         # per-fault cost over this much (on disk and in /dev/shm)
UFFD_TP_SIZE=128M           # random 4 KiB reads of a cold file this large ...
UFFD_TP_BUFFER=32M          # ... through a mapping with this buffer, page sizes 4K..4M
UFFD_SECONDS=0.5            # per page size
UFFD_THREADS=2

RAW_SIZE=4G                 # raw view scanned through the mount and as a plain file (a few GiB)
RAW_PAGE_SIZES="64K 256K 1M 4M"  # umapfs page sizes for the raw scans, 64 KiB to 4 MiB
RAW_BUFFER=4352M            # fits the file: warm runs are kernel-cache hits
RAW_TOUCHES=80000           # random 4 KiB touches per random scan (20000 per GiB)

GRAPH_SCALE=20              # R-MAT 2^20 vertices, edgefactor 16: 128 MiB CSR
GRAPH_EDGEFACTOR=16
BFS_THREADS=2
BFS_ROOTS=4
BFS_PAGE_SIZE=1M            # umapfs page size for the side-by-side BFS (the study shows why: 64K is twice as slow cold)
BFS_BUFFER=512M             # fits the graph
BFS_TIMEOUT=120             # seconds per search

SWEEP_FRAMES_FIT=14         # nights of 1024x1024 float32 frames (4 MiB each): one that fits SWEEP_BUFFER ...
SWEEP_FRAMES_BIG=64         # ... and one four times larger (256 MiB)
SWEEP_WIDTH=1024
SWEEP_HEIGHT=1024
SWEEP_BUFFER=64M
SWEEP_PAGE_SIZE=1M          # the night that fits: a page is a quarter frame
SWEEP_PAGE_SIZE_BIG=64K     # the big night: a band of 16 rows, so the buffer holds the band's reach in every frame
SWEEP_VECTORS=1000000       # random vectors per sweep (the reference application runs millions)
SWEEP_RUNS=5                # repetitions of each sweep configuration (median reported; the host is noisy)
SWEEP_TIMEOUT=150           # seconds per sweep; longer is recorded as a timeout

# sort: the in-place sort through a writable mount vs kernel mmap (sort_bench.sh)
SORT_SIZE=128M              # of 64-bit keys
SORT_BUFFER=32M             # the mount's buffer_size and the sort's --mem
SORT_PAGE_SIZES="64K 1M"
SORT_THREADS=2
SORT_TIMEOUT=120            # seconds per sort

# The page-size study (BFS and the sweep, cold, fresh mount per run).
STUDY_PAGE_SIZES="4K 16K 64K 256K 1M 4M"
STUDY_BFS_BUFFERS="112M 512M"         # seven eighths of the graph, and all of it
STUDY_BFS_ROOTS=1                     # searches per study point
STUDY_SWEEP_BUFFERS="32M 64M"         # the big night (256 MiB) through an eighth and a quarter of it
STUDY_RUNS=3                          # repetitions per study point (median); a point that times out is not repeated
STUDY_SWEEP_PAGE_SIZES="16K 64K 256K 1M"  # the sweep's study points (each regenerates the night)
STUDY_TIMEOUT=40                      # seconds; a study point that takes longer is recorded as a timeout
