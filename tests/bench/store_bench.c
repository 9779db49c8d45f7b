/* Benchmark of the store on large files: committing and restoring N bytes
 * of new outputs against `cp` of the same data, and peak memory.
 *
 *   cc -O2 -D_GNU_SOURCE -I. -o build/tests/store_bench \
 *      tests/bench/store_bench.c build/libpipe.a -lgit2 -lxxhash -lm
 *   build/tests/store_bench DIR [MiB] [files] [reps]
 *
 * SETTLE_MS sets the pause after the cache is dropped (1000).
 * VERBOSE=1 adds one line per run (the figures tests/bench/run.sh reads);
 * `cp --reflink=always` is timed too when DIR's filesystem can reflink.
 *
 * DIR must be on the filesystem under test (and have room for ~4x the
 * data). Each figure is the median of reps runs; the page cache is warm
 * (the data was just written), as it is after a stage ran. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

static void die(const char *what, struct error *err)
{
	fprintf(stderr, "store_bench: %s: %s\n", what,
		err ? err->msg.buf : strerror(errno));
	exit(1);
}

/* Pause after each settle, ms: SETTLE_MS, default 1000. */
static long settle_ms = 1000;

/* Let writeback settle, and (as root) drop the page cache and read back
 * the files the next step reads: on a VM, growing the page cache into
 * memory the guest never touched costs more than the copy itself, and
 * would make whichever step runs later look slower. */
static void settle(const char *warm)
{
	struct strbuf sb = STRBUF_INIT;
	struct timespec ts = {settle_ms / 1000, settle_ms % 1000 * 1000000};
	int fd;

	sync();
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (fd >= 0) {
		if (write(fd, "3\n", 2) != 2)
			perror("drop_caches");
		close(fd);
	}
	if (warm) {
		strbuf_addf(&sb, "cat %s/* >/dev/null 2>&1 || true", warm);
		if (system(sb.buf))
			die(sb.buf, NULL);
	}
	strbuf_release(&sb);
	nanosleep(&ts, NULL);
}

/* files of size bytes each, random, in dir; each run gets new content so
 * nothing deduplicates. */
static void make_data(const char *dir, int files, size_t size, unsigned seed)
{
	char *buf = xmalloc((1 << 20) + 8);
	struct strbuf path = STRBUF_INIT;

	fs_mkdir_p(dir, 0755);
	for (int f = 0; f < files; f++) {
		int fd;
		uint64_t x = seed * 7919u + (unsigned)f + 1;

		strbuf_reset(&path);
		strbuf_addf(&path, "%s/part-%03d.bin", dir, f);
		fd = open(path.buf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			die(path.buf, NULL);
		for (size_t done = 0; done < size; done += 1 << 20) {
			size_t n = size - done < (1 << 20) ? size - done
							   : (1 << 20);

			for (size_t i = 0; i < n / 8 + 1; i++) {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				memcpy(buf + i * 8, &x, 8);
			}
			if (write(fd, buf, n) != (ssize_t)n)
				die("write", NULL);
		}
		close(fd);
	}
	strbuf_release(&path);
	free(buf);
}

/* Time `cp -r from to` (with --reflink=always when reflink is set), with a
 * sync of the copy when sync_too is set. */
static double time_cp(const char *from, const char *to, int sync_too,
		      int reflink)
{
	struct strbuf sb = STRBUF_INIT;
	double t;

	strbuf_addf(&sb, "cp -r %s'%s' '%s'",
		    reflink ? "--reflink=always " : "", from, to);
	if (sync_too)
		strbuf_addf(&sb, " && sync -f '%s'", to);
	t = now();
	if (system(sb.buf))
		die(sb.buf, NULL);
	t = now() - t;
	strbuf_release(&sb);
	return t;
}

/* Whether `cp --reflink=always` works in dir (btrfs, xfs; not ext4). */
static int can_reflink(const char *dir)
{
	struct strbuf sb = STRBUF_INIT;
	int ok;

	strbuf_addf(&sb,
		    "cd '%s' && echo x >rl-a && cp --reflink=always rl-a rl-b "
		    ">/dev/null 2>&1; r=$?; rm -f rl-a rl-b; exit $r",
		    dir);
	ok = system(sb.buf) == 0;
	strbuf_release(&sb);
	return ok;
}

static void report(const char *what, double *v, double *cp, double *cps, int n)
{
	double m, lo, cpm, cplo, cpsm, cpslo;

	qsort(cp, (size_t)n, sizeof(*cp), cmp_double);
	qsort(cps, (size_t)n, sizeof(*cps), cmp_double);
	cpm = cp[n / 2], cplo = cp[0], cpsm = cps[n / 2], cpslo = cps[0];
	m = median(v, n);
	lo = v[0];
	printf("%-14s %6.3f s (%6.3f)  %5.2fx cp (%5.2fx)  %5.2fx cp+sync "
	       "(%5.2fx)\n",
	       what, m, lo, m / cpm, lo / cplo, m / cpsm, lo / cpslo);
}

int main(int argc, char **argv)
{
	const char *root = argc > 1 ? argv[1] : "/tmp/store-bench";
	size_t mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 1024;
	int files = argc > 3 ? atoi(argv[3]) : 1;
	int reps = argc > 4 ? atoi(argv[4]) : 5;
	double tc[32], tr[32], tcp[32], tcps[32], trl[32];
	int reflink;
	struct strbuf ws = STRBUF_INIT, pipe_dir = STRBUF_INIT,
		      out = STRBUF_INIT, copy = STRBUF_INIT, cas = STRBUF_INIT;
	struct error err = ERROR_INIT;
	struct store *st;
	struct rusage ru;
	char id[STORE_ID_SIZE];
	char *outs[] = {"out/", NULL};

	if (reps > 32)
		reps = 32;
	if (getenv("SETTLE_MS"))
		settle_ms = atol(getenv("SETTLE_MS"));
	fs_remove_tree(root);
	strbuf_addf(&ws, "%s/ws", root);
	strbuf_addf(&pipe_dir, "%s/.pipe", ws.buf);
	strbuf_addf(&out, "%s/out", ws.buf);
	strbuf_addf(&copy, "%s/copy", root);
	strbuf_addf(&cas, "%s/store/cas/*", pipe_dir.buf);
	if (store_open(&st, pipe_dir.buf, &err))
		die("open", &err);
	reflink = can_reflink(root);
	for (int r = 0; r < reps; r++) {
		struct store_prov p;

		make_data(out.buf, files, (mib << 20) / (size_t)files,
			  (unsigned)r);
		settle(out.buf);
		/* cp, then cp + sync of the copy (the store fsyncs). */
		tcp[r] = time_cp(out.buf, copy.buf, 0, 0);
		fs_remove_tree(copy.buf);
		settle(out.buf);
		tcps[r] = time_cp(out.buf, copy.buf, 1, 0);
		fs_remove_tree(copy.buf);
		settle(out.buf);
		trl[r] = -1;
		if (reflink) {
			trl[r] = time_cp(out.buf, copy.buf, 0, 1);
			fs_remove_tree(copy.buf);
			settle(out.buf);
		}
		store_prov_init(&p);
		tc[r] = now();
		if (store_commit_stage(st, ws.buf, "bench", outs, &p, id, &err))
			die("commit", &err);
		tc[r] = now() - tc[r];
		fs_remove_tree(out.buf);
		settle(cas.buf);
		tr[r] = now();
		if (store_restore(st, id, ws.buf, &err))
			die("restore", &err);
		tr[r] = now() - tr[r];
		sync();
	}
	/* one line per run, for tests/bench/run.sh (reflink -1: cannot) */
	if (getenv("VERBOSE"))
		for (int r = 0; r < reps; r++)
			printf("run %d: cp %.6f cp+sync %.6f reflink %.6f "
			       "commit %.6f restore %.6f\n",
			       r, tcp[r], tcps[r], trl[r], tc[r], tr[r]);
	getrusage(RUSAGE_SELF, &ru);
	printf("data: %zu MiB in %d file(s), %d runs: median (min)\n", mib,
	       files, reps);
	report("cp", tcp, tcp, tcps, reps);
	report("cp + sync", tcps, tcp, tcps, reps);
	report("store commit", tc, tcp, tcps, reps);
	report("store restore", tr, tcp, tcps, reps);
	printf("peak RSS      %ld MiB\n", ru.ru_maxrss / 1024);
	store_free(st);
	fs_remove_tree(root);
	return 0;
}
