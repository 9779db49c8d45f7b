/* Kubeconfig files -> struct kube_config: the files merged as kubectl
 * merges them, one context picked, its cluster and user decoded
 * (pipefile/kubeconfig.h). The entries themselves are read in
 * pipefile/kubeentry.c; the pod's service account is read here. */
#include "pipefile/kubeconfig.h"
#include "pipefile/kubeint.h"
#include "util/strvec.h"
#include "util/suggest.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KC_MAX_BYTES (16u << 20) /* a kubeconfig file */

static const char *const list_key[KC__NR] = {"clusters", "users", "contexts"};
static const char *const body_key[KC__NR] = {"cluster", "user", "context"};
const char *const kc_kind_name[KC__NR] = {"cluster", "user", "context"};

/* -------- excerpts without secrets -------- */

/* A key that holds a secret, written as a key (followed by ':') on the
 * line: "token:", "\"password\":", "client-key-data:", "value:". */
static int has_secret_key(const char *line, size_t len)
{
	static const char *const words[] = {"token", "password", "key-data",
					    "value", "secret"};
	char *s = xmemdupz(line, len);
	int found = 0;

	for (size_t i = 0; i < ARRAY_SIZE(words) && !found; i++) {
		const char *p = s;

		while (!found && (p = strcasestr(p, words[i]))) {
			p += strlen(words[i]);
			p += *p == '"' || *p == '\'';
			p += strspn(p, " \t");
			found = *p == ':';
		}
	}
	free(s);
	return found;
}

/* A long run of base64 or JWT characters: a token or key wrapped on lines
 * of its own, as block scalars hold them. */
static int has_credential_run(const char *line, size_t len)
{
	size_t run = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		int tok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			  (c >= '0' && c <= '9') || c == '+' || c == '/' ||
			  c == '=' || c == '_' || c == '-';

		run = tok ? run + 1 : 0;
		if (run >= 40)
			return 1;
	}
	return 0;
}

static int has_secret_value(const struct kc *k, const char *line, size_t len)
{
	char *s = xmemdupz(line, len);
	int found = 0;

	for (size_t i = 0; i < k->secret_nr && !found; i++) {
		const char *v = k->secrets[i]->str, *nl;

		/* each line of the value on its own (block scalars) */
		for (; *v && !found; v = *nl ? nl + 1 : nl) {
			nl = v + strcspn(v, "\n");
			if (nl > v) {
				char *piece = xmemdupz(v, (size_t)(nl - v));

				found = strstr(s, piece) != NULL;
				free(piece);
			}
		}
	}
	free(s);
	return found;
}

/* 1 when the source line may hold a secret and must not be quoted. */
static int secret_line(const struct kc *k, const char *line, size_t len)
{
	return has_secret_key(line, len) || has_credential_run(line, len) ||
	       has_secret_value(k, line, len);
}

static void drop_secret_excerpt(const struct kc *k, struct error *err)
{
	const char *s = err->source_line;

	if (s && secret_line(k, s, strlen(s))) {
		free(err->source_line);
		err->source_line = NULL;
	}
}

int kc_fail(struct kc *k, const struct kc_file *f, const struct ynode *n,
	    int code, const char *fmt, ...)
{
	struct strbuf msg = STRBUF_INIT;
	const char *s = NULL;
	char *text = NULL;
	size_t len = 0;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&msg, fmt, ap);
	va_end(ap);
	if (f && n)
		s = pipefile_src_line(&f->src, n->line, &len);
	if (s && len <= 1024 && !secret_line(k, s, len))
		text = xmemdupz(s, len);
	error_set_at(k->err, code, f ? f->src.name : NULL, s ? n->line : 0,
		     s ? n->col : 0, text, "%s", msg.buf);
	free(text);
	strbuf_release(&msg);
	return -1;
}

/* -------- the node tree -------- */

const struct ynode *kc_get(const struct ynode *map, const char *key)
{
	if (!map || map->kind != YNODE_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->nr; i++) {
		const struct ynode *kn = map->items[2 * i];

		if (kn->kind == YNODE_SCALAR && !strcmp(kn->str, key))
			return map->items[2 * i + 1];
	}
	return NULL;
}

static void add_secret(struct kc *k, const struct ynode *n, int depth)
{
	/* aliases make a DAG: bound the walk, not only the depth */
	if (!n || depth > 16 || k->secret_nr >= 4096 || ++k->walked > 100000)
		return;
	if (n->kind == YNODE_SCALAR) {
		if (n->nr) {
			ALLOC_GROW(k->secrets, k->secret_nr + 1,
				   k->secret_alloc);
			k->secrets[k->secret_nr++] = n;
		}
		return;
	}
	for (uint32_t i = 0; i < n->nr * (n->kind == YNODE_MAP ? 2u : 1u); i++)
		add_secret(k, n->items[i], depth + 1);
}

/* The values of a user that are secrets, kept to keep them out of
 * excerpts. */
static void collect_secrets(struct kc *k, const struct ynode *user)
{
	const struct ynode *env = kc_get(kc_get(user, "exec"), "env");

	add_secret(k, kc_get(user, "token"), 0);
	add_secret(k, kc_get(user, "password"), 0);
	add_secret(k, kc_get(user, "client-key-data"), 0);
	add_secret(k, kc_get(user, "auth-provider"), 0);
	for (uint32_t i = 0; env && env->kind == YNODE_SEQ && i < env->nr; i++)
		add_secret(k, kc_get(env->items[i], "value"), 0);
}

/* -------- indexing the files -------- */

static int index_list(struct kc *k, struct kc_file *f, int kind,
		      const struct ynode *list)
{
	for (uint32_t i = 0; i < list->nr; i++) {
		const struct ynode *item = list->items[i], *name;
		struct kc_entry *e;

		name = kc_get(item, "name");
		if (item->kind != YNODE_MAP)
			return kc_fail(k, f, item, EXIT_ENV,
				       "each entry of '%s' must be a mapping "
				       "with 'name' and '%s'",
				       list_key[kind], body_key[kind]);
		if (!name || name->kind != YNODE_SCALAR || !name->nr)
			return kc_fail(k, f, name ? name : item, EXIT_ENV,
				       "an entry of '%s' has no 'name'",
				       list_key[kind]);
		if (strmap_get(&k->map[kind], name->str))
			continue; /* the first file defining it wins */
		ALLOC_GROW(k->ent[kind], k->ent_nr[kind] + 1,
			   k->ent_alloc[kind]);
		e = &k->ent[kind][k->ent_nr[kind]++];
		e->name = name;
		e->body = kc_get(item, body_key[kind]);
		e->f = f;
		e->kind = kind;
		strmap_put(&k->map[kind], name->str,
			   (void *)(uintptr_t)k->ent_nr[kind]);
	}
	return 0;
}

static int index_file(struct kc *k, struct kc_file *f)
{
	const struct ynode *root = f->doc.root, *cur, *users;

	if (!root || pipefile_yaml_is_null(root))
		return 0; /* an empty file is an empty config */
	if (root->kind != YNODE_MAP)
		return kc_fail(k, f, root, EXIT_ENV,
			       "a kubeconfig must be a mapping (with "
			       "'clusters', 'users' and 'contexts')");
	/* secrets first: no error may quote them */
	users = kc_get(root, "users");
	for (uint32_t i = 0; users && users->kind == YNODE_SEQ && i < users->nr;
	     i++)
		collect_secrets(k, kc_get(users->items[i], "user"));
	for (int kind = 0; kind < KC__NR; kind++) {
		const struct ynode *list = kc_get(root, list_key[kind]);

		if (!list || pipefile_yaml_is_null(list))
			continue;
		if (list->kind != YNODE_SEQ)
			return kc_fail(k, f, list, EXIT_ENV,
				       "'%s' must be a list", list_key[kind]);
		if (index_list(k, f, kind, list))
			return -1;
	}
	cur = kc_get(root, "current-context");
	if (cur && cur->kind != YNODE_SCALAR)
		return kc_fail(k, f, cur, EXIT_ENV,
			       "'current-context' must be a context's name");
	if (cur && cur->nr && !k->current) {
		k->current = cur;
		k->current_f = f;
	}
	return 0;
}

static int add_file(struct kc *k, const char *name, const char *text,
		    size_t len)
{
	struct kc_file *f = &k->files[k->nr++];
	const char *slash = strrchr(name, '/');

	f->src.name = xstrdup(name);
	f->src.text = xmemdupz(text, len);
	f->src.len = len;
	f->dir = slash ? xstrndup(name, (size_t)(slash - name + 1))
		       : xstrdup("");
	if (len > KC_MAX_BYTES)
		return kc_fail(k, f, NULL, EXIT_ENV,
			       "file is larger than %u MiB",
			       KC_MAX_BYTES >> 20);
	if (pipefile_yaml_load(&f->doc, &f->src, k->err)) {
		k->err->exit_code = EXIT_ENV;
		drop_secret_excerpt(k, k->err);
		return -1;
	}
	return index_file(k, f);
}

static void kc_release(struct kc *k)
{
	for (size_t i = 0; i < k->nr; i++) {
		struct kc_file *f = &k->files[i];

		pipefile_yaml_release(&f->doc);
		explicit_bzero((char *)f->src.text, f->src.len);
		free((char *)f->src.text);
		free((char *)f->src.name);
		free(f->dir);
	}
	free(k->files);
	for (int kind = 0; kind < KC__NR; kind++) {
		free(k->ent[kind]);
		strmap_release(&k->map[kind]);
	}
	free(k->secrets);
}

static void kc_init(struct kc *k, size_t files, struct error *err)
{
	memset(k, 0, sizeof(*k));
	k->files = xcalloc(files ? files : 1, sizeof(*k->files));
	k->err = err;
	for (int kind = 0; kind < KC__NR; kind++)
		strmap_init(&k->map[kind], 0);
}

/* -------- picking the context -------- */

const struct kc_entry *kc_find(const struct kc *k, int kind, const char *name)
{
	uintptr_t i = (uintptr_t)strmap_get(&k->map[kind], name);

	return i ? &k->ent[kind][i - 1] : NULL;
}

/* "known contexts: a, b, c" (the first ten), or "no context is defined". */
void kc_known(const struct kc *k, int kind, struct strbuf *out)
{
	size_t n = k->ent_nr[kind];

	if (!n) {
		strbuf_addf(out, "no %s is defined", kc_kind_name[kind]);
		return;
	}
	strbuf_addf(out, "known %ss: ", kc_kind_name[kind]);
	for (size_t i = 0; i < n && i < 10; i++)
		strbuf_addf(out, "%s'%.80s'", i ? ", " : "",
			    k->ent[kind][i].name->str);
	if (n > 10)
		strbuf_addf(out, " and %zu more", n - 10);
}

/* "; did you mean 'x'?" for a name close to a known context. */
static void did_you_mean(const struct kc *k, const char *name,
			 struct strbuf *out)
{
	const char *cand[64], *best;
	size_t n = 0;

	if (strlen(name) > 128)
		return;
	for (size_t i = 0; i < k->ent_nr[KC_CONTEXTS] && n < 64; i++)
		if (k->ent[KC_CONTEXTS][i].name->nr <= 128)
			cand[n++] = k->ent[KC_CONTEXTS][i].name->str;
	best = suggest_closest(name, cand, n);
	if (best)
		strbuf_addf(out, "; did you mean '%s'?", best);
}

static int pick_context(struct kc *k, const char *name,
			const struct kc_entry **out)
{
	struct strbuf known = STRBUF_INIT;
	int ret = -1;

	kc_known(k, KC_CONTEXTS, &known);
	if (!name && !k->current) {
		error_set_at(k->err, EXIT_ENV,
			     k->nr == 1 ? k->files[0].src.name : NULL, 0, 0,
			     NULL,
			     "no current-context is set in the kubeconfig "
			     "(%s): pass --context NAME or run 'kubectl config "
			     "use-context NAME'",
			     known.buf);
		goto out;
	}
	*out = kc_find(k, KC_CONTEXTS, name ? name : k->current->str);
	if (*out) {
		ret = 0;
	} else if (name) {
		error_set(k->err, EXIT_USAGE, "unknown context '%s' (%s)", name,
			  known.buf);
		did_you_mean(k, name, &k->err->msg);
	} else {
		kc_fail(k, k->current_f, k->current, EXIT_ENV,
			"current-context '%s' is not defined (%s): run "
			"'kubectl config use-context NAME' or pass --context",
			k->current->str, known.buf);
	}
out:
	strbuf_release(&known);
	return ret;
}

static int decode(struct kc *k, const char *context, struct kube_config *out)
{
	const struct kc_entry *ctx;

	if (context && !*context)
		context = NULL; /* --context "": the current one, as kubectl */
	if (pick_context(k, context, &ctx))
		return -1;
	out->context = xstrdup(ctx->name->str);
	out->source = xstrdup(ctx->f->src.name);
	return kc_decode_context(k, ctx, out);
}

int kubeconfig_parse(struct kube_config *out, const char *name,
		     const char *text, size_t len, const char *context,
		     struct error *err)
{
	struct kc k;
	int ret;

	memset(out, 0, sizeof(*out));
	kc_init(&k, 1, err);
	ret = add_file(&k, name, text, len);
	if (!ret)
		ret = decode(&k, context, out);
	kc_release(&k);
	if (ret)
		kube_config_release(out);
	return ret;
}

/* -------- the files, and the pod's service account -------- */

/* Read a small regular file (at most max bytes) into out. Returns 0, or
 * -1 with errno (EFBIG when larger, EINVAL when not a regular file). */
int kc_read_file(const char *path, size_t max, struct strbuf *out)
{
	struct stat st;
	long n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
		return -1;
	}
	n = strbuf_read_fd(out, fd, max + 1);
	close(fd);
	if (n >= 0 && (size_t)n > max) {
		errno = EFBIG;
		return -1;
	}
	return n < 0 ? -1 : 0;
}

const char *kc_strerror(int e)
{
	if (e == EINVAL)
		return "not a regular file";
	return e == EFBIG ? "larger than pipe accepts" : strerror(e);
}

static char *sa_path(const char *file)
{
	const char *dir = getenv("PIPE_K8S_SA_DIR");

	return xstrfmt("%s/%s", dir && *dir ? dir : KUBECONFIG_SA_DIR, file);
}

static void trim(struct strbuf *sb)
{
	while (sb->len && strchr(" \t\r\n", sb->buf[sb->len - 1]))
		strbuf_setlen(sb, sb->len - 1);
}

static int in_cluster(struct kube_config *out, const char *context,
		      struct error *err)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	char *ca = sa_path("ca.crt"), *ns = sa_path("namespace");
	struct strbuf sb = STRBUF_INIT;
	int ret = -1;

	if (context) {
		error_set(err, EXIT_USAGE,
			  "unknown context '%s': no kubeconfig file exists, "
			  "and in a pod the service account has no contexts",
			  context);
		goto out;
	}
	out->server =
		xstrfmt(strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s",
			host, port);
	out->source = xstrdup("in-cluster service account");
	out->token_file = sa_path("token");
	if (kc_read_file(ca, 1u << 20, &sb)) {
		error_set(err, EXIT_ENV,
			  "in-cluster: cannot read the cluster's CA '%s': %s",
			  ca, kc_strerror(errno));
		goto out;
	}
	out->ca_pem = strbuf_detach(&sb, NULL);
	if (access(out->token_file, R_OK)) {
		error_set(err, EXIT_ENV,
			  "in-cluster: cannot read the service account token "
			  "'%s': %s (is automountServiceAccountToken off?)",
			  out->token_file, kc_strerror(errno));
		goto out;
	}
	if (!kc_read_file(ns, 4096, &sb)) {
		trim(&sb);
		if (sb.len)
			out->namespace = strbuf_detach(&sb, NULL);
	}
	ret = 0;
out:
	free(ca);
	free(ns);
	strbuf_release(&sb);
	return ret;
}

/* The files to read: $KUBECONFIG's entries (duplicates once), else
 * ~/.kube/config. */
static void kubeconfig_paths(struct strvec *paths)
{
	const char *env = getenv("KUBECONFIG"), *home = getenv("HOME");

	if (env && *env) {
		char *copy = xstrdup(env), *save = NULL;

		for (char *p = strtok_r(copy, ":", &save); p;
		     p = strtok_r(NULL, ":", &save)) {
			int seen = 0;

			for (size_t i = 0; i < paths->nr && !seen; i++)
				seen = !strcmp(paths->v[i], p);
			if (!seen)
				strvec_push(paths, p);
		}
		free(copy);
	} else if (home && *home) {
		strvec_pushf(paths, "%s/.kube/config", home);
	}
}

static int no_config(struct kube_config *out, const char *context,
		     const struct strvec *paths, struct error *err)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	const char *env = getenv("KUBECONFIG");

	if (host && *host && port && *port)
		return in_cluster(out, context, err);
	if (env && *env)
		return error_set(err, EXIT_ENV,
				 "no kubeconfig: none of the files in "
				 "KUBECONFIG exists ('%s')",
				 env);
	return error_set(err, EXIT_ENV,
			 "no kubeconfig: '%s' does not exist and this is not a "
			 "pod (KUBERNETES_SERVICE_HOST is not set): set "
			 "KUBECONFIG or put the cluster's kubeconfig there",
			 paths->nr ? paths->v[0] : "~/.kube/config");
}

int kubeconfig_load(struct kube_config *out, const char *context,
		    struct error *err)
{
	struct strvec paths = STRVEC_INIT;
	struct strbuf text = STRBUF_INIT;
	struct kc k;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	kubeconfig_paths(&paths);
	kc_init(&k, paths.nr, err);
	for (size_t i = 0; i < paths.nr; i++) {
		strbuf_reset(&text);
		if (kc_read_file(paths.v[i], KC_MAX_BYTES, &text)) {
			if (errno == ENOENT)
				continue;
			error_set(err, EXIT_ENV,
				  "cannot read kubeconfig '%s': %s", paths.v[i],
				  kc_strerror(errno));
			goto out;
		}
		if (add_file(&k, paths.v[i], text.buf, text.len))
			goto out;
	}
	if (!k.nr)
		ret = no_config(out, context, &paths, err);
	else
		ret = decode(&k, context, out);
out:
	explicit_bzero(text.buf, text.len);
	strbuf_release(&text);
	kc_release(&k);
	strvec_clear(&paths);
	if (ret)
		kube_config_release(out);
	return ret;
}
