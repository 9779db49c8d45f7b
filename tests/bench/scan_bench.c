/* Benchmark of engine/scan through the stat cache: builds DIR/data with
 * FOLDERS x FILES small files (once), then times a cold scan (empty cache,
 * every file read) and warm scans (the no-op `pipe status` case). Not part
 * of `make test`; tests/bench/scan_bench.sh builds and runs it beside git
 * status. Usage: scan_bench DIR [FOLDERS FILES]; env ONCE=1: one warm scan
 * and nothing printed; WARM_ONLY=1: no cold scan (for profiling). */
#include "engine/scan.h"
#include "engine/statcache.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/strbuf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(struct error *err)
{
	error_print(err, stderr);
	exit(1);
}

static void make_tree(const char *dir, int folders, int files)
{
	struct strbuf p = STRBUF_INIT, body = STRBUF_INIT;

	for (int d = 0; d < folders; d++) {
		for (int f = 0; f < files; f++) {
			FILE *fp;

			strbuf_reset(&p);
			strbuf_addf(&p, "%s/data/d%03d/f%05d.csv", dir, d, f);
			if (f == 0 && fs_mkdir_parent(p.buf, 0777)) {
				perror(p.buf);
				exit(1);
			}
			strbuf_reset(&body);
			strbuf_addf(&body, "id,value\n%d,%d\n", d, f);
			fp = fopen(p.buf, "wb");
			if (!fp ||
			    fwrite(body.buf, 1, body.len, fp) != body.len ||
			    fclose(fp)) {
				perror(p.buf);
				exit(1);
			}
		}
	}
	strbuf_release(&p);
	strbuf_release(&body);
	/* entries hashed within STATCACHE_RACY_NS of a change are re-read
	 * next time; real inputs are older than that */
	sleep((unsigned)(STATCACHE_RACY_NS / 1000000000) + 1);
}

struct timing {
	double load, scan, save, release;
	size_t files, misses;
};

static struct timing one_scan(const char *dir, const char *cache)
{
	struct error err = ERROR_INIT;
	struct scan_list l = SCAN_LIST_INIT;
	struct statcache *sc;
	struct statcache_stats st;
	struct hash128 h;
	struct timing t;
	double t0 = now();
	int found;

	if (statcache_open(&sc, cache, &err))
		die(&err);
	t.load = now() - t0;
	t0 = now();
	if (scan_path(sc, dir, "data/", 0, &l, &found, &h, &err))
		die(&err);
	t.scan = now() - t0;
	t0 = now();
	if (statcache_save(sc, &err))
		die(&err);
	t.save = now() - t0;
	statcache_get_stats(sc, &st);
	t.files = l.nr;
	t.misses = st.misses;
	t0 = now();
	statcache_free(sc);
	scan_list_release(&l);
	t.release = now() - t0;
	return t;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/tmp/pipe-scan-bench";
	int folders = argc > 3 ? atoi(argv[2]) : 100;
	int files = argc > 3 ? atoi(argv[3]) : 1000;
	struct strbuf cache = STRBUF_INIT, data = STRBUF_INIT;
	struct timing t, runs[7];
	double total[7];
	struct stat st;

	strbuf_addf(&data, "%s/data", dir);
	if (stat(data.buf, &st)) {
		fprintf(stderr, "creating %d x %d files in %s\n", folders,
			files, data.buf);
		make_tree(dir, folders, files);
	}
	strbuf_addf(&cache, "%s/.pipe/statcache", dir);
	if (getenv("ONCE")) {
		/* one warm scan, timed from outside like `git status` */
		t = one_scan(dir, cache.buf);
		if (getenv("VERBOSE"))
			fprintf(stderr,
				"load %.1f scan %.1f save %.1f release %.1f\n",
				1e3 * t.load, 1e3 * t.scan, 1e3 * t.save,
				1e3 * t.release);
		return t.misses ? 1 : 0;
	}
	if (getenv("WARM_ONLY"))
		goto warm; /* for profiling */
	unlink(cache.buf);
	t = one_scan(dir, cache.buf);
	printf("cold scan (every file read): %zu files, %.1f ms "
	       "(scan %.1f, save %.1f)\n",
	       t.files, 1e3 * (t.load + t.scan + t.save), 1e3 * t.scan,
	       1e3 * t.save);
warm:
	for (int i = 0; i < 7; i++) {
		runs[i] = one_scan(dir, cache.buf);
		total[i] = runs[i].load + runs[i].scan + runs[i].save;
		if (runs[i].misses)
			fprintf(stderr, "warning: %zu files re-read\n",
				runs[i].misses);
	}
	qsort(total, 7, sizeof(double), cmp_double);
	t = runs[6];
	if (stat(cache.buf, &st))
		st.st_size = 0;
	printf("warm scan (no file read), median of 7: %.1f ms "
	       "(last: load %.1f, scan %.1f, save %.1f; cache %lld bytes)\n",
	       1e3 * total[3], 1e3 * t.load, 1e3 * t.scan, 1e3 * t.save,
	       (long long)st.st_size);
	strbuf_release(&cache);
	strbuf_release(&data);
	return 0;
}
