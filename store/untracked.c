/* What a run records besides its stage commits: the project's git status
 * (read once, in a child process), the inputs the project's git does not
 * hold (inputs/ in the run's tree), and the scratch stores `pipe
 * reproduce` runs against. */
#include "store/internal.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/path.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define INPUTS_ENTRY "inputs"

/* ---- the project's git status ---------------------------------------- */

/*
 * A run reads the project's status once (sgit_project_read). `pipe run`
 * reads it in a child process begun before the Pipefile loads
 * (store_project_start): its time is hidden behind the load, and its
 * memory (46 MB at 100,000 tracked files: libgit2's index, the status
 * list) is the child's, not added to the run's peak. The child then stays
 * to answer which of the run's inputs HEAD holds as they are, holding
 * HEAD's folders (9 MB for a folder of 100,000 files) on its side too.
 * Child to parent: one message of fields that each end in a NUL: its
 * length, then head, dirty, can answer, prefix, the count of changed
 * paths and each; then a byte per path asked ('1': clean). Parent to
 * child: paths, each ending in a NUL, no more unanswered than the pipe
 * from the child holds, so that the answers never fill it. The pipes are
 * made 1 MB large where the system allows: 100,000 paths then go in one
 * exchange (a loaded machine made each of 25 exchanges of 4,096 wait for
 * its turn: 0.2-0.4 s). The parent closing its end ends the child.
 */
#define PIPE_SIZE (1 << 20)

struct store_project {
	struct sgit_project git;
	int can_ask;  /* HEAD's tree can be asked about (the child says) */
	pid_t pid;    /* the child, or 0 */
	int fd, qfd;  /* the pipe from it and the one to it, or -1 */
	size_t batch; /* the answers the pipe from it holds */
	char *dir;    /* not read yet: where from */
};

static struct store_project *project_new(void)
{
	struct store_project *p = xcalloc(1, sizeof(*p));

	strbuf_init(&p->git.head, 0);
	strbuf_init(&p->git.prefix, 0);
	p->fd = p->qfd = -1;
	return p;
}

struct store_project *store_project_read(void)
{
	struct store_project *p = project_new();

	sgit_project_read(&p->git);
	return p;
}

static void add_field(struct strbuf *sb, const char *s)
{
	strbuf_add(sb, s, strlen(s) + 1);
}

/* The child's answers to the paths read from in, to out, until in ends. */
static void serve(struct sgit_tracked *t, int in, int out)
{
	struct strbuf q = STRBUF_INIT, ans = STRBUF_INIT;
	char buf[65536];
	ssize_t got;

	while ((got = read(in, buf, sizeof(buf))) != 0) {
		size_t off = 0;
		const char *z;

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			break;
		strbuf_add(&q, buf, (size_t)got);
		while ((z = memchr(q.buf + off, 0, q.len - off))) {
			strbuf_addch(&ans, sgit_tracked_clean(t, q.buf + off)
						   ? '1'
						   : '0');
			off = (size_t)(z - q.buf) + 1;
		}
		memmove(q.buf, q.buf + off, q.len - off);
		strbuf_setlen(&q, q.len - off);
		if (ans.len && fs_write_all(out, ans.buf, ans.len))
			break;
		strbuf_reset(&ans);
	}
	_exit(0);
}

/* The child of store_project_start. Never returns. */
static void project_child(const char *dir, int out, int in)
{
	struct sgit_project p;
	struct sgit_tracked *t = NULL;
	struct strbuf msg = STRBUF_INIT, sb = STRBUF_INIT;
	int can, null;

	/* a ^C is the parent's to handle: it may still ask */
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	/* nor does it hold the parent's output open (a reader of pipe's
	 * stdout waits for its end) */
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int fd = 0; null >= 0 && fd < 3; fd++)
		dup2(null, fd);
	if (chdir(dir))
		_exit(1);
	sgit_project_read(&p);
	can = sgit_tracked_open(&t, &p);
	add_field(&msg, p.head.buf);
	add_field(&msg, p.dirty ? "1" : "0");
	add_field(&msg, can ? "1" : "0");
	add_field(&msg, p.prefix.buf);
	strbuf_addf(&msg, "%zu", p.changed_nr);
	strbuf_addch(&msg, 0);
	for (size_t i = 0; i < p.changed_nr; i++)
		add_field(&msg, p.changed[i]);
	strbuf_addf(&sb, "%zu", msg.len);
	strbuf_addch(&sb, 0);
	strbuf_add(&sb, msg.buf, msg.len);
	if (fs_write_all(out, sb.buf, sb.len) || !can)
		_exit(0);
	strbuf_release(&msg);
	strbuf_release(&sb);
#ifdef __GLIBC__
	malloc_trim(0); /* the status pass's memory, while it waits */
#endif
	serve(t, in, out);
}

struct store_project *store_project_start(const char *dir)
{
	struct store_project *p = project_new();
	int out[2], in[2], size;

	p->dir = xstrdup(dir);
	/* close-on-exec: a stage must not hold the child's pipes open */
	if (pipe2(out, O_CLOEXEC))
		return p; /* read by store_project_wait */
	if (pipe2(in, O_CLOEXEC)) {
		close(out[0]);
		close(out[1]);
		return p;
	}
	fcntl(in[1], F_SETPIPE_SZ, PIPE_SIZE);
	fcntl(out[0], F_SETPIPE_SZ, PIPE_SIZE);
	size = fcntl(out[0], F_GETPIPE_SZ);
	p->batch = size >= 4096 ? (size_t)size : 4096;
	p->pid = fork();
	if (!p->pid) {
		close(out[0]);
		close(in[1]);
		project_child(dir, out[1], in[0]);
	}
	close(out[1]);
	close(in[0]);
	if (p->pid < 0) {
		p->pid = 0;
		close(out[0]);
		close(in[1]);
		return p;
	}
	p->fd = out[0];
	p->qfd = in[1];
	return p;
}

/* The next NUL-terminated field of *buf (len left), or NULL. */
static const char *field(const char **buf, size_t *len)
{
	const char *f = *buf, *z = memchr(f, 0, *len);

	if (!z)
		return NULL;
	*len -= (size_t)(z + 1 - f);
	*buf = z + 1;
	return f;
}

/* The child's message into p; 0, or -1 when it is short or bad. */
static int project_parse(struct store_project *p, const char *buf, size_t len)
{
	const char *f[5];
	char *end;
	unsigned long long n;

	for (int i = 0; i < 5; i++)
		if (!(f[i] = field(&buf, &len)))
			return -1;
	n = strtoull(f[4], &end, 10);
	if (*end || n > len)
		return -1;
	p->git.changed = xcalloc(n + 1, sizeof(*p->git.changed));
	for (; p->git.changed_nr < n; p->git.changed_nr++) {
		const char *c = field(&buf, &len);

		if (!c)
			return -1;
		p->git.changed[p->git.changed_nr] = xstrdup(c);
	}
	strbuf_addstr(&p->git.head, f[0]);
	p->git.dirty = f[1][0] == '1';
	p->can_ask = f[2][0] == '1';
	p->git.in_tree = p->can_ask;
	strbuf_addstr(&p->git.prefix, f[3]);
	return 0;
}

/* Read from fd into sb until it holds want bytes: 0, or -1 at its end. */
static int read_to(int fd, struct strbuf *sb, size_t want)
{
	char buf[8192];

	while (sb->len < want) {
		size_t left = want - sb->len;
		ssize_t got =
			read(fd, buf, left < sizeof(buf) ? left : sizeof(buf));

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return -1;
		strbuf_add(sb, buf, (size_t)got);
	}
	return 0;
}

/* The child ended, killed first when it may still be at work. */
static void project_reap(struct store_project *p, int kill_it)
{
	if (p->fd >= 0)
		close(p->fd);
	if (p->qfd >= 0)
		close(p->qfd);
	p->fd = p->qfd = -1;
	if (!p->pid)
		return;
	if (kill_it)
		kill(p->pid, SIGKILL);
	while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
		;
	p->pid = 0;
}

/* The child's message: its length (a field), then that many bytes. */
static int read_message(struct store_project *p)
{
	struct strbuf sb = STRBUF_INIT;
	unsigned long long len = 0;
	char *end;
	int ret = -1;

	while (!memchr(sb.buf, 0, sb.len) && sb.len < 24)
		if (read_to(p->fd, &sb, sb.len + 1))
			goto out;
	len = strtoull(sb.buf, &end, 10);
	if (*end || len > (1ULL << 32))
		goto out;
	strbuf_reset(&sb);
	if (!read_to(p->fd, &sb, (size_t)len) &&
	    !project_parse(p, sb.buf, sb.len))
		ret = 0;
out:
	strbuf_release(&sb);
	return ret;
}

void store_project_wait(struct store_project *p)
{
	if (!p->dir)
		return; /* read already */
	if (p->fd < 0 || read_message(p)) {
		/* no child, or a bad answer: read here (in the workspace,
		 * where the child went) */
		project_reap(p, 1);
		sgit_project_release(&p->git);
		p->can_ask = 0;
		sgit_project_read(&p->git);
	}
	if (!p->can_ask)
		project_reap(p, 0);
	free(p->dir);
	p->dir = NULL;
}

const char *store_project_head(const struct store_project *p, int *dirty)
{
	*dirty = p->git.dirty;
	return p->git.head.buf;
}

void store_project_free(struct store_project *p)
{
	if (!p)
		return;
	project_reap(p, 1);
	free(p->dir);
	sgit_project_release(&p->git);
	free(p);
}

/* The child's answers for paths into untracked: 0, or -1 (it is gone). */
static int ask_child(struct store_project *p, char *const *paths, size_t n,
		     unsigned char *untracked)
{
	struct strbuf q = STRBUF_INIT, a = STRBUF_INIT;
	int ret = -1;

	for (size_t i = 0; i < n; i += p->batch) {
		size_t m = n - i < p->batch ? n - i : p->batch;

		strbuf_reset(&a);
		for (size_t k = 0; k < m; k++) { /* 64 KB at a time */
			add_field(&q, paths[i + k]);
			if (q.len < 65536 && k + 1 < m)
				continue;
			if (fs_write_all(p->qfd, q.buf, q.len))
				goto out;
			strbuf_reset(&q);
		}
		if (read_to(p->fd, &a, m))
			goto out;
		for (size_t k = 0; k < m; k++)
			untracked[i + k] = a.buf[k] != '1';
	}
	ret = 0;
out:
	strbuf_release(&q);
	strbuf_release(&a);
	return ret;
}

int store_project_untracked(struct store_project *p, char *const *paths,
			    size_t n, unsigned char *untracked)
{
	struct sgit_tracked *t;

	store_project_wait(p);
	if (p->pid && !ask_child(p, paths, n, untracked))
		return 1;
	if (p->pid) /* gone: asked here */
		project_reap(p, 1);
	if (!sgit_tracked_open(&t, &p->git))
		return 0;
	for (size_t i = 0; i < n; i++)
		untracked[i] = !sgit_tracked_clean(t, paths[i]);
	sgit_tracked_free(t);
	return 1;
}

int store_project_resolve(const char *rev, struct strbuf *commit,
			  struct strbuf *prefix, struct error *err)
{
	return sgit_project_resolve(rev, commit, prefix, err);
}

int store_project_export(const char *commit, const char *dir,
			 const char *must_have, struct error *err)
{
	return sgit_project_export(commit, dir, must_have, err);
}

/* The inputs tree of the commit ref points at: 1 found, 0 none, -1. */
static int head_inputs(struct store *st, const char *ref, struct sgit_oid *out,
		       struct error *err)
{
	struct sgit_oid commit;
	struct sgit_commit c;
	unsigned mode;
	int rc = sgit_ref_read(st->git, ref, &commit, err);

	if (rc <= 0)
		return rc;
	if (sgit_read_commit(st->git, &commit, &c, err))
		return -1;
	rc = sgit_tree_lookup(st->git, &c.tree, INPUTS_ENTRY, &mode, out, err);
	sgit_commit_release(&c);
	return rc > 0 && mode == SGIT_MODE_TREE ? 1 : rc < 0 ? -1 : 0;
}

int store_run_set_inputs(struct store *st, const char *workspace,
			 const struct store_file *files, size_t nr,
			 const struct store_manifest *prev_m,
			 struct store_run *run, struct error *err)
{
	struct sgit_oid prev, tree;
	int has_prev = head_inputs(st, RUNS_REF, &prev, err);

	run->inputs[0] = '\0';
	if (has_prev < 0)
		return -1;
	if (!nr)
		return 0;
	if (store_write_files(st, workspace, files, nr, has_prev ? &prev : NULL,
			      has_prev ? prev_m : NULL, &tree, err))
		return -1;
	sgit_oid_hex(&tree, run->inputs);
	return 0;
}

int store_prev_run_inputs(struct store *st, struct store_manifest *m)
{
	struct error ignore = ERROR_INIT;
	struct sgit_oid prev;
	int rc = head_inputs(st, RUNS_REF, &prev, &ignore);

	store_manifest_init(m);
	if (rc > 0 && store_tree_manifest(st, &prev, m, &ignore) != 1)
		rc = 0;
	error_release(&ignore);
	return rc > 0;
}

const struct store_file *store_manifest_find(const struct store_manifest *m,
					     const char *path)
{
	return manifest_find(m, path);
}

int store_run_root(struct store *st, const struct store_run *run,
		   const struct sgit_oid *stages, struct sgit_oid *out,
		   struct error *err)
{
	struct sgit_entry e[2];
	size_t nr = 0;

	if (stages)
		e[nr++] =
			(struct sgit_entry){"stages", SGIT_MODE_TREE, *stages};
	if (run->inputs[0]) {
		e[nr].name = INPUTS_ENTRY;
		e[nr].mode = SGIT_MODE_TREE;
		if (sgit_oid_parse(run->inputs, &e[nr++].oid))
			return error_set(err, EXIT_FAILED,
					 "bad inputs tree '%s'", run->inputs);
	}
	return sgit_write_tree(st->git, nr ? e : NULL, nr, out, err);
}

int store_run_read_inputs(struct store *st, const struct sgit_oid *tree,
			  struct store_run *run, struct error *err)
{
	struct sgit_oid oid;
	unsigned mode;
	int rc =
		sgit_tree_lookup(st->git, tree, INPUTS_ENTRY, &mode, &oid, err);

	run->inputs[0] = '\0';
	if (rc < 0)
		return -1;
	if (rc && mode == SGIT_MODE_TREE)
		sgit_oid_hex(&oid, run->inputs);
	return 0;
}

static int inputs_tree(struct store *st, const struct store_run *run,
		       struct sgit_oid *tree, struct store_manifest *m,
		       struct error *err)
{
	int rc;

	store_manifest_init(m);
	if (!run->inputs[0])
		return 0;
	if (sgit_oid_parse(run->inputs, tree))
		return error_set(err, EXIT_FAILED, "bad inputs tree '%s'",
				 run->inputs);
	rc = store_tree_manifest(st, tree, m, err);
	if (!rc)
		error_set(err, EXIT_FAILED,
			  "run %.12s: its inputs have no manifest", run->id);
	return rc == 1 ? 1 : -1;
}

int store_run_inputs(struct store *st, const struct store_run *run,
		     struct store_manifest *out, struct error *err)
{
	struct sgit_oid tree;

	return inputs_tree(st, run, &tree, out, err);
}

int store_restore_run_inputs(struct store *st, const struct store_run *run,
			     const char *workspace, char *const *only,
			     struct error *err)
{
	struct store_manifest m;
	struct sgit_oid tree;
	int rc = inputs_tree(st, run, &tree, &m, err);

	if (rc > 0)
		rc = store_restore_tree(st, &tree, &m, workspace, only, err);
	store_manifest_release(&m);
	return rc < 0 ? -1 : 0;
}

/* ---- scratch stores -------------------------------------------------- */

struct ref_copy {
	struct sgit_ref_move *v;
	size_t nr, alloc;
};

static int copy_ref(const char *name, const struct sgit_oid *oid, void *data)
{
	struct ref_copy *c = data;

	ALLOC_GROW(c->v, c->nr + 1, c->alloc);
	memset(&c->v[c->nr], 0, sizeof(c->v[c->nr]));
	c->v[c->nr].name = xstrdup(name);
	c->v[c->nr++].oid = *oid;
	return 0;
}

static int copy_refs(struct store *from, struct store *to, struct error *err)
{
	struct ref_copy c = {0};
	int ret;

	ret = sgit_ref_foreach(from->git, "refs/pipe/*", copy_ref, &c, err) < 0
		      ? -1
	      : c.nr ? sgit_refs_move(to->git, c.v, c.nr, err)
		     : 0;
	for (size_t i = 0; i < c.nr; i++)
		free((char *)c.v[i].name);
	free(c.v);
	return ret;
}

/* Point path at target (absolute): a symlink for cas/, a line in
 * objects/info/alternates for the objects. */
static int link_main(const char *git_dir, struct store *main, struct error *err)
{
	char *objects = path_join(main->git_dir, "objects");
	char *abs_objects = realpath(objects, NULL);
	char *abs_cas = NULL;
	char *alt = path_join(git_dir, "objects/info/alternates");
	char *cas = path_join(git_dir, "cas");
	struct strbuf line = STRBUF_INIT;
	int ret = -1;

	if (fs_mkdir_p(main->cas_dir, 0755) ||
	    !(abs_cas = realpath(main->cas_dir, NULL)) || !abs_objects) {
		error_set(err, EXIT_ENV, "cannot read the store '%s': %s",
			  main->git_dir, strerror(errno));
		goto out;
	}
	strbuf_addf(&line, "%s\n", abs_objects);
	fs_remove_tree(cas);
	if (fs_mkdir_parent(alt, 0755) ||
	    fs_write_atomic(alt, line.buf, line.len, err) ||
	    symlink(abs_cas, cas)) {
		if (!err->exit_code)
			error_set(err, EXIT_ENV, "cannot link '%s' to '%s': %s",
				  git_dir, main->git_dir, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	strbuf_release(&line);
	free(objects);
	free(abs_objects);
	free(abs_cas);
	free(alt);
	free(cas);
	return ret;
}

int store_make_shadow(struct store *main, const char *pipe_dir,
		      struct error *err)
{
	char *git_dir = path_join(pipe_dir, "store");
	struct store *st = NULL;
	int ret = -1;

	fs_remove_tree(git_dir);
	/* made first, then linked: the odb reads its alternates on open */
	if (store_open(&st, pipe_dir, err))
		goto out;
	store_free(st);
	st = NULL;
	if (link_main(git_dir, main, err) || store_open(&st, pipe_dir, err) ||
	    copy_refs(main, st, err))
		goto out;
	ret = 0;
out:
	if (ret)
		error_prefix(err, "scratch store '%s': ", git_dir);
	store_free(st);
	free(git_dir);
	return ret;
}
