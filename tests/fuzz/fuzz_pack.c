/* Fuzz target: a pack and its index (a store's objects/pack, which a pull
 * or another tool may have written) merged by pack_merge. The input is a
 * 4-byte big-endian length, that many bytes of index, then the pack; the
 * low bit of its last byte (in the pack's checksum, which the merge does
 * not read) also gives the pack twice (every object a duplicate). A merge that
 * succeeds must give a pack that merges again. */
#include "store/pack.h"
#include "tests/fuzz/fuzz.h"
#include "util/error.h"
#include "util/strbuf.h"

#include <dirent.h>
#include <stdio.h>

static char pack_dir_path[64];

static void pack_dir_clear(void)
{
	struct strbuf sb = STRBUF_INIT;
	DIR *d = opendir(pack_dir_path);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		strbuf_reset(&sb);
		strbuf_addf(&sb, "%s/%s", pack_dir_path, de->d_name);
		unlink(sb.buf);
	}
	if (d)
		closedir(d);
	strbuf_release(&sb);
}

static void pack_dir_remove(void)
{
	pack_dir_clear();
	rmdir(pack_dir_path);
}

/* A folder of this process's, in /dev/shm when there is one. */
static const char *pack_dir(void)
{
	if (pack_dir_path[0])
		return pack_dir_path;
	snprintf(pack_dir_path, sizeof(pack_dir_path), "%s/pipe-fuzz-XXXXXX",
		 access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
	if (!mkdtemp(pack_dir_path))
		abort();
	atexit(pack_dir_remove);
	return pack_dir_path;
}

static void pack_put_file(const char *dir, const char *name, const void *data,
			  size_t size)
{
	struct strbuf path = STRBUF_INIT;
	FILE *f;

	strbuf_addf(&path, "%s/%s", dir, name);
	f = fopen(path.buf, "w");
	if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f))
		abort();
	strbuf_release(&path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *dir = pack_dir();
	char *stems[] = {"pack-a", "pack-b"};
	struct strbuf stem = STRBUF_INIT;
	struct error err = ERROR_INIT;
	size_t idx_len;
	int twice;

	if (size < 4)
		return 0;
	idx_len = (size_t)data[0] << 24 | (size_t)data[1] << 16 |
		  (size_t)data[2] << 8 | data[3];
	if (idx_len > size - 4)
		return 0;
	twice = data[size - 1] & 1;
	pack_put_file(dir, "pack-a.idx", data + 4, idx_len);
	pack_put_file(dir, "pack-a.pack", data + 4 + idx_len,
		      size - 4 - idx_len);
	if (twice) {
		pack_put_file(dir, "pack-b.idx", data + 4, idx_len);
		pack_put_file(dir, "pack-b.pack", data + 4 + idx_len,
			      size - 4 - idx_len);
	}
	if (!pack_merge(dir, stems, twice ? 2 : 1, &stem, &err) && stem.len) {
		char *again[] = {stem.buf};
		struct strbuf stem2 = STRBUF_INIT;

		/* what the merge wrote is a pack it reads */
		if (pack_merge(dir, again, 1, &stem2, &err))
			abort();
		strbuf_release(&stem2);
	}
	pack_dir_clear();
	strbuf_release(&stem);
	error_release(&err);
	return 0;
}
