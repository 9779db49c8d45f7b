/* Replays the corpus of every fuzz target (tests/fuzz/<name>/: the seeds
 * and the inputs of the bugs fuzzing found) through the target, built with
 * the normal compiler: `make test` runs them without clang, and `make asan`
 * under the sanitizers. A target that crashes or aborts fails the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/strbuf.h"
#include "util/xalloc.h"

/* Each target under its own name (they all define the libFuzzer entry). */
#define LLVMFuzzerTestOneInput fuzz_pipefile
#include "tests/fuzz/fuzz_pipefile.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_pipefile_cache
#include "tests/fuzz/fuzz_pipefile_cache.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_params
#include "tests/fuzz/fuzz_params.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_state
#include "tests/fuzz/fuzz_state.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_statcache
#include "tests/fuzz/fuzz_statcache.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_manifest
#include "tests/fuzz/fuzz_manifest.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_trailers
#include "tests/fuzz/fuzz_trailers.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_docker_json
#include "tests/fuzz/fuzz_docker_json.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_docker_demux
#include "tests/fuzz/fuzz_docker_demux.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_jobs
#include "tests/fuzz/fuzz_jobs.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_keys
#include "tests/fuzz/fuzz_keys.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_oci
#include "tests/fuzz/fuzz_oci.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_kubeconfig
#include "tests/fuzz/fuzz_kubeconfig.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_remote
#include "tests/fuzz/fuzz_remote.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_kube
#include "tests/fuzz/fuzz_kube.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_s3
#include "tests/fuzz/fuzz_s3.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_pack
#include "tests/fuzz/fuzz_pack.c"
#undef LLVMFuzzerTestOneInput

typedef int fuzz_fn(const uint8_t *data, size_t size);

/* tests/fuzz/: from the binary (ROOT/build/tests/test_fuzz_replay), else
 * from the source file's path, relative to where make ran. */
static void corpus_root(struct strbuf *out)
{
	char *exe = realpath("/proc/self/exe", NULL);
	const char *file = __FILE__, *slash = strrchr(file, '/');
	char *p;
	struct stat st;

	for (int i = 0; exe && i < 3 && (p = strrchr(exe, '/')); i++)
		*p = '\0';
	if (exe) {
		strbuf_addf(out, "%s/tests/fuzz", exe);
		free(exe);
		if (!stat(out->buf, &st) && S_ISDIR(st.st_mode))
			return;
		strbuf_reset(out);
	}
	strbuf_add(out, file, slash ? (size_t)(slash - file + 1) : 0);
	strbuf_addstr(out, "../fuzz");
}

/* Each file of tests/fuzz/<name>/ once through fn, in a buffer of exactly
 * its size (so the sanitizers see a read past the end). */
static void replay(const char *name, fuzz_fn *fn)
{
	struct strbuf dir = STRBUF_INIT, path = STRBUF_INIT, text = STRBUF_INIT;
	struct dirent *de;
	DIR *d;
	int seen = 0;

	corpus_root(&dir);
	strbuf_addf(&dir, "/%s", name);
	d = opendir(dir.buf);
	if (!d)
		fail_msg("no corpus '%s'", dir.buf);
	while ((de = readdir(d))) {
		char *copy;

		if (de->d_name[0] == '.')
			continue;
		strbuf_reset(&path);
		strbuf_addf(&path, "%s/%s", dir.buf, de->d_name);
		strbuf_reset(&text);
		assert_int_equal(strbuf_read_file(&text, path.buf, 0), 0);
		copy = xmalloc(text.len ? text.len : 1);
		memcpy(copy, text.buf, text.len);
		fn((const uint8_t *)copy, text.len);
		free(copy);
		seen++;
	}
	closedir(d);
	assert_true(seen >= 1);
	strbuf_release(&dir);
	strbuf_release(&path);
	strbuf_release(&text);
}

#define REPLAY(name)                                                           \
	static void test_##name(void **state)                                  \
	{                                                                      \
		(void)state;                                                   \
		replay(#name, fuzz_##name);                                    \
	}
REPLAY(pipefile)
REPLAY(pipefile_cache)
REPLAY(params)
REPLAY(state)
REPLAY(statcache)
REPLAY(manifest)
REPLAY(trailers)
REPLAY(docker_json)
REPLAY(docker_demux)
REPLAY(jobs)
REPLAY(keys)
REPLAY(oci)
REPLAY(kubeconfig)
REPLAY(kube)
REPLAY(s3)
REPLAY(pack)
REPLAY(remote)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipefile),
		cmocka_unit_test(test_pipefile_cache),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_state),
		cmocka_unit_test(test_statcache),
		cmocka_unit_test(test_manifest),
		cmocka_unit_test(test_trailers),
		cmocka_unit_test(test_docker_json),
		cmocka_unit_test(test_docker_demux),
		cmocka_unit_test(test_jobs),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_oci),
		cmocka_unit_test(test_kubeconfig),
		cmocka_unit_test(test_kube),
		cmocka_unit_test(test_s3),
		cmocka_unit_test(test_pack),
		cmocka_unit_test(test_remote),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
