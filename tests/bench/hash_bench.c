/* Benchmark helper: hash each file named on the command line with pipe's
 * own content hash (hash_file, XXH3-128) and print it as `xxhsum -H2` does,
 * so tests/bench/run.sh can time it as a process beside xxhsum and md5sum
 * and check that the hashes agree. */
#include <stdio.h>

#include "util/error.h"
#include "util/hash.h"

int main(int argc, char **argv)
{
	struct error err = ERROR_INIT;
	char hex[HASH_HEX_LEN + 1];
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		struct hash128 h;

		if (hash_file(argv[i], &h, NULL, &err)) {
			fprintf(stderr, "hash_bench: %s\n", err.msg.buf);
			error_release(&err);
			rc = 1;
			continue;
		}
		hash_to_hex(&h, hex);
		printf("%s  %s\n", hex, argv[i]);
	}
	return rc;
}
