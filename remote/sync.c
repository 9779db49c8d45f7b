/* What push and pull share, whatever the transport: the workspace id, the
 * refs that travel, the CAS files commits name, the tracking refs a pull
 * moves, and CAS files brought in (checked against their name). */
#include "remote/sync.h"
#include "store/cas.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int remote_is_s3(const char *spec)
{
	return !strncmp(spec, "s3://", 5);
}

/* <store>/pipe-id: 16 random hex digits, made once. */
int sync_ws_id(struct store *st, char *ws, struct error *err)
{
	struct strbuf path = STRBUF_INIT, sb = STRBUF_INIT;
	unsigned char rnd[REMOTE_WS_LEN / 2];
	int ret = -1, fd;

	strbuf_addf(&path, "%s/pipe-id", st->git_dir);
	if (strbuf_read_file(&sb, path.buf, 64) >= 0) {
		strbuf_trim_trailing_newline(&sb);
		if (sb.len == REMOTE_WS_LEN &&
		    strspn(sb.buf, "0123456789abcdef") == REMOTE_WS_LEN) {
			memcpy(ws, sb.buf, REMOTE_WS_LEN + 1);
			ret = 0;
			goto out;
		}
	}
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, rnd, sizeof(rnd)) != (ssize_t)sizeof(rnd)) {
		if (fd >= 0)
			close(fd);
		error_set(err, EXIT_ENV, "cannot read /dev/urandom");
		goto out;
	}
	close(fd);
	for (size_t i = 0; i < sizeof(rnd); i++)
		sprintf(ws + 2 * i, "%02x", rnd[i]);
	strbuf_reset(&sb);
	strbuf_addf(&sb, "%s\n", ws);
	ret = fs_write_atomic(path.buf, sb.buf, sb.len, err);
out:
	strbuf_release(&path);
	strbuf_release(&sb);
	return ret;
}

void sync_refs_release(struct sync_refs *r)
{
	for (size_t i = 0; i < r->nr; i++) {
		free(r->v[i].suffix);
		free(r->v[i].ws);
	}
	free(r->v);
	memset(r, 0, sizeof(*r));
}

void sync_refs_add(struct sync_refs *r, const char *ws, const char *suffix,
		   const struct sgit_oid *oid)
{
	ALLOC_GROW(r->v, r->nr + 1, r->alloc);
	r->v[r->nr].ws = ws ? xstrdup(ws) : NULL;
	r->v[r->nr].suffix = xstrdup(suffix);
	r->v[r->nr++].oid = *oid;
}

static int local_cb(const char *name, const struct sgit_oid *oid, void *data)
{
	const char *suffix = name + strlen("refs/pipe/");

	if (remote_ref_suffix_ok(suffix))
		sync_refs_add(data, NULL, suffix, oid);
	return 0;
}

int sync_local_refs(struct store *st, struct sync_refs *out, struct error *err)
{
	memset(out, 0, sizeof(*out));
	if (store_batch_flush(st, err))
		return -1;
	return sgit_ref_foreach(st->git, "refs/pipe/*", local_cb, out, err);
}

static int collect_cb(const struct sgit_oid *oid, void *data)
{
	struct oid_list *l = data;

	ALLOC_GROW(l->v, l->nr + 1, l->alloc);
	l->v[l->nr++] = *oid;
	return 0;
}

int sync_cas_named(struct store *st, const struct oid_list *tips,
		   const struct oid_list *hide, struct store_file **out,
		   size_t *nr, struct error *err)
{
	struct oid_list commits = {0}, have = {0};
	int ret;

	/* hide only what the store has: the rest is not reachable here */
	for (size_t i = 0; i < hide->nr; i++)
		if (sgit_object_exists(st->git, &hide->v[i]))
			collect_cb(&hide->v[i], &have);
	ret = sgit_walk(st->git, tips->v, tips->nr, have.v, have.nr, 0,
			collect_cb, &commits, err);
	if (!ret)
		ret = store_cas_named(st, &commits, out, nr, err);
	free(commits.v);
	free(have.v);
	return ret;
}

int sync_cas_have(struct store *st, const char *hex)
{
	char *p = cas_path(st->cas_dir, hex);
	int ok = access(p, F_OK) == 0;

	free(p);
	return ok;
}

char *sync_cas_path(struct store *st, const char *hex)
{
	return cas_path(st->cas_dir, hex);
}

/* refs/pipe/remotes/<ws>/<suffix> moves to oid when it is new or oid
 * descends from it; one that went elsewhere keeps its commits and oid
 * goes to refs/pipe/remotes/<ws>/<oid>/<suffix>. */
int sync_track(struct store *st, const char *ws, const char *suffix,
	       const struct sgit_oid *oid, int *moved, struct error *err)
{
	struct strbuf ref = STRBUF_INIT;
	struct sgit_oid old;
	int rc, ret = -1;

	*moved = 0;
	strbuf_addf(&ref, "refs/pipe/remotes/%s/%s", ws, suffix);
	rc = sgit_ref_read(st->git, ref.buf, &old, err);
	if (rc < 0)
		goto out;
	if (rc && sgit_oid_equal(&old, oid)) {
		ret = 0;
		goto out;
	}
	if (rc) {
		rc = sgit_descends(st->git, oid, &old, err);
		if (rc < 0)
			goto out;
		if (!rc) {
			rc = sgit_descends(st->git, &old, oid, err);
			if (rc) {
				ret = rc < 0 ? -1 : 0; /* have it already */
				goto out;
			}
			char hex[SGIT_HEXSZ + 1];

			sgit_oid_hex(oid, hex);
			strbuf_reset(&ref);
			strbuf_addf(&ref, "refs/pipe/remotes/%s/%s/%s", ws, hex,
				    suffix);
			rc = sgit_ref_read(st->git, ref.buf, &old, err);
			if (rc < 0)
				goto out;
			if (rc) {
				ret = 0;
				goto out;
			}
		}
	}
	if (!sgit_ref_name_ok(ref.buf)) {
		error_set(err, EXIT_ENV, "the remote names a bad ref '%s'",
			  ref.buf);
		goto out;
	}
	if (sgit_ref_update(st->git, ref.buf, oid, rc ? &old : NULL, err))
		goto out;
	*moved = 1;
	ret = 0;
out:
	strbuf_release(&ref);
	return ret;
}

int sync_cas_import(struct store *st, const char *tmp, const char *hex,
		    struct error *err)
{
	struct cas_batch b;
	char got[HASH_HEX_LEN + 1];
	unsigned long long size;
	int ret = -1;

	cas_batch_init(&b, st->cas_dir);
	if (cas_adopt(&b, tmp, got, &size, err))
		goto out;
	if (strcmp(got, hex)) {
		error_set(err, EXIT_ENV,
			  "the remote's CAS file %s holds content hashing to "
			  "%s: not taken",
			  hex, got);
		goto out;
	}
	ret = cas_commit(&b, err);
out:
	cas_batch_release(&b);
	unlink(tmp);
	return ret;
}

/* The folder downloads land in before they are checked: <store>/pull-tmp,
 * emptied first (what a killed pull left there is only downloads). */
char *sync_tmp_dir(struct store *st, struct error *err)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, "%s/pull-tmp", st->git_dir);
	fs_remove_tree(sb.buf);
	if (fs_mkdir_p(sb.buf, 0755)) {
		error_set(err, EXIT_ENV, "cannot make '%s': %s", sb.buf,
			  strerror(errno));
		strbuf_release(&sb);
		return NULL;
	}
	return strbuf_detach(&sb, NULL);
}
