/* The Pipefile's `kubernetes:` keys: the top-level mapping (the cluster,
 * the workspace, the pods' identity and the scheduling defaults) and a
 * stage's own scheduling, checked with Kubernetes' rules for names and
 * labels so that the API server never refuses a pod for what the
 * Pipefile says. */
#include "pipefile/internal.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

#define BIT(k) (1ul << (k))
#define ALL_KEYS (~0ul)
#define KUBE_MAX_ID 2147483647LL /* uids, gids, tolerationSeconds */

/* The scheduling keys come first: a stage may set only those. */
enum {
	KU_NODE_SELECTOR,
	KU_TOLERATIONS,
	KU_SERVICE_ACCOUNT,
	KU_CONTEXT,
	KU_NAMESPACE,
	KU_WORKSPACE,
	KU_RUN_AS_USER,
	KU_RUN_AS_GROUP,
	KU_PULL_SECRETS,
	KU__NR
};
static const char *const kube_keys[KU__NR] = {
	"nodeSelector", "tolerations", "serviceAccountName",
	"context",	"namespace",   "workspace",
	"runAsUser",	"runAsGroup",  "imagePullSecrets",
};
#define SCHED_KEYS                                                             \
	(BIT(KU_NODE_SELECTOR) | BIT(KU_TOLERATIONS) | BIT(KU_SERVICE_ACCOUNT))

/* -------- Kubernetes' rules for names and labels -------- */

static int is_alnum(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9');
}

static int is_lower_alnum(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

/* What is wrong, said of subj ("", "its prefix "); returns -1. */
static int fail(struct strbuf *why, const char *subj, const char *what)
{
	strbuf_addf(why, "%s%s", subj, what);
	return -1;
}

static int bad_char(struct strbuf *why, unsigned char ch)
{
	if (ch == ' ')
		strbuf_addstr(why, "a space is not allowed");
	else if (ch > ' ' && ch < 0x7f)
		strbuf_addf(why, "'%c' is not allowed", ch);
	else
		strbuf_addf(why, "byte 0x%02x is not allowed", ch);
	return -1;
}

/* s[0..n) as one part of a name: at most max bytes of letters, digits
 * and '-', '.', '_' (dns: lowercase letters, digits, '-' and '.', each
 * '.' between letters or digits), starting and ending with a letter or
 * digit. Else -1, what is wrong in why (subj names the part) and the
 * byte at fault in *off. */
static int check_part(const char *s, size_t n, size_t max, int dns,
		      const char *subj, struct strbuf *why, size_t *off)
{
	*off = 0;
	if (!n)
		return fail(why, subj, "is empty");
	if (n > max) {
		*off = max;
		strbuf_addf(why, "%sis longer than %zu characters", subj, max);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		*off = i;
		if (dns ? is_lower_alnum(ch) : is_alnum(ch))
			continue;
		if (ch != '-' && ch != '.' && (dns || ch != '_'))
			return bad_char(why, ch);
		if (!i)
			return fail(why, subj,
				    "must start with a letter or digit");
		if (i + 1 == n)
			return fail(why, subj,
				    "must end with a letter or digit");
		if (dns && ch == '.' &&
		    (!is_lower_alnum((unsigned char)s[i - 1]) ||
		     !is_lower_alnum((unsigned char)s[i + 1])))
			return fail(why, "",
				    "each '.' must have a letter or digit on "
				    "either side");
	}
	return 0;
}

/* A DNS-1123 subdomain: the names of secrets and service accounts. */
static int check_name(const char *s, struct strbuf *why, size_t *off)
{
	return check_part(s, strlen(s), 253, 1, "", why, off);
}

/* A label key, or a toleration's key: [prefix/]name. */
static int check_label_key(const char *s, struct strbuf *why, size_t *off)
{
	const char *slash = strchr(s, '/'), *name;

	if (!slash)
		return check_part(s, strlen(s), 63, 0, "", why, off);
	name = slash + 1;
	if (strchr(name, '/')) {
		*off = (size_t)(strchr(name, '/') - s);
		return fail(why, "", "has more than one '/'");
	}
	if (check_part(s, (size_t)(slash - s), 253, 1, "its prefix ", why, off))
		return -1;
	if (!check_part(name, strlen(name), 63, 0, "its name ", why, off))
		return 0;
	*off += (size_t)(name - s);
	return -1;
}

static int check_label_value(const char *s, struct strbuf *why, size_t *off)
{
	return *s ? check_part(s, strlen(s), 63, 0, "", why, off) : 0;
}

struct kube_rule {
	const char *what;
	int (*check)(const char *s, struct strbuf *why, size_t *off);
	const char *help; /* what to write instead */
};

static const struct kube_rule rule_name = {
	"name", check_name,
	"use lowercase letters, digits, '-' and '.', starting and ending "
	"with a letter or digit, at most 253 characters"};
static const struct kube_rule rule_label_key = {
	"label key", check_label_key,
	"use up to 63 letters, digits, '-', '_' and '.', starting and "
	"ending with a letter or digit, after an optional prefix such as "
	"'example.com/'"};
static const struct kube_rule rule_label_value = {
	"label value", check_label_value,
	"use up to 63 letters, digits, '-', '_' and '.', starting and "
	"ending with a letter or digit, or an empty string"};

/* n's text must pass r: "bad WHAT 'x' [for 'key'] WHERE: WHY (HELP)",
 * at the byte at fault. */
static int check(struct pf_ctx *c, const struct ynode *n,
		 const struct kube_rule *r, const char *key,
		 const struct pf_where *w)
{
	struct strbuf why = STRBUF_INIT, where = STRBUF_INIT;
	size_t off = 0;
	int shown = n->nr > 60 ? 57 : (int)n->nr;

	if (!r->check(n->str, &why, &off))
		return 0;
	pipefile_where(w, &where);
	pipefile_src_error(
		c->src, c->err, n->line, pipefile_yaml_col_at(n, c->src, off),
		"bad %s '%.*s%s'%s%s%s %s: %s (%s)", r->what, shown, n->str,
		n->nr > 60 ? "..." : "", key ? " for '" : "", key ? key : "",
		key ? "'" : "", where.buf, why.buf, r->help);
	strbuf_release(&why);
	strbuf_release(&where);
	return -1;
}

/* "HEAD WHERE TAIL" at line:col; returns -1. */
static int said(struct pf_ctx *c, const struct ynode *at,
		const struct pf_where *w, const char *head, const char *tail)
{
	struct strbuf where = STRBUF_INIT;

	pipefile_where(w, &where);
	pipefile_src_error(c->src, c->err, at->line, at->col, "%s %s %s", head,
			   where.buf, tail);
	strbuf_release(&where);
	return -1;
}

/* -------- the keys -------- */

/* A Kubernetes name (a secret, a service account). */
static int read_name(struct pf_ctx *c, const char *key, const struct ynode *n,
		     const struct pf_where *w, char **out)
{
	const char *s;

	if (pipefile_get_string(c, key, n, w, &s) ||
	    check(c, n, &rule_name, key, w))
		return -1;
	*out = xstrdup(s);
	return 0;
}

/* runAsUser: from 1, since a pod of pipe's never runs as root. */
static int read_uid(struct pf_ctx *c, const struct ynode *n,
		    const struct pf_where *w, long long *out)
{
	long long v;

	if (n->kind == YNODE_SCALAR && !pipefile_parse_int(n->str, &v) && !v)
		return said(c, n, w, "'runAsUser'",
			    "is 0, the root user, but pipe runs its pods as "
			    "non-root (use another uid, e.g. 1000)");
	return pipefile_get_int(c, "runAsUser", n, w, 1, KUBE_MAX_ID, out);
}

static int cmp_kv(const void *a, const void *b)
{
	return strcmp(((const struct pf_kv *)a)->key,
		      ((const struct pf_kv *)b)->key);
}

/* nodeSelector: { disktype: ssd }, sorted by key. */
static int read_node_selector(struct pf_ctx *c, const struct ynode *n,
			      const struct pf_where *up, struct pf_kvs *out)
{
	struct pf_where w = *up;

	if (n->kind != YNODE_MAP)
		return pipefile_bad_type(c, "nodeSelector", n, up,
					 "a mapping of labels, e.g. { "
					 "disktype: ssd }");
	w.section = "kubernetes.nodeSelector";
	if (n->dup)
		return pipefile_dup_error(c, n, "label", &w);
	out->v = xcalloc(n->nr + 1, sizeof(*out->v));
	out->alloc = n->nr + 1;
	for (uint32_t i = 0; i < n->nr; i++) {
		const struct ynode *k = n->items[2 * i],
				   *v = n->items[2 * i + 1];
		struct pf_kv *kv = &out->v[out->nr];

		if (check(c, k, &rule_label_key, NULL, &w))
			return -1;
		if (v->kind != YNODE_SCALAR)
			return pipefile_bad_type(c, k->str, v, &w,
						 "a label value (a string)");
		/* as Kubernetes reads it: a null label value is empty */
		if (!pipefile_yaml_is_null(v) &&
		    check(c, v, &rule_label_value, k->str, &w))
			return -1;
		kv->key = xstrdup(k->str);
		kv->value = xstrdup(pipefile_yaml_is_null(v) ? "" : v->str);
		kv->line = k->line;
		kv->col = k->col;
		out->nr++;
	}
	qsort(out->v, out->nr, sizeof(*out->v), cmp_kv);
	return 0;
}

enum { TO_KEY, TO_OPERATOR, TO_VALUE, TO_EFFECT, TO_SECONDS, TO__NR };
static const char *const toleration_keys[TO__NR] = {
	"key", "operator", "value", "effect", "tolerationSeconds"};
static const char *const operators[] = {"Equal", "Exists"};
static const char *const effects[] = {"NoSchedule", "PreferNoSchedule",
				      "NoExecute"};

static int read_enum(struct pf_ctx *c, const char *key, const struct ynode *n,
		     const struct pf_where *w, const char *const *table,
		     size_t nr, const char *list, char **out)
{
	const char *s;

	if (pipefile_get_enum(c, key, n, w, table, nr, list, &s))
		return -1;
	*out = xstrdup(s);
	return 0;
}

/* A string that may be empty ("" is how Kubernetes writes "none"). */
static int get_text(struct pf_ctx *c, const char *key, const struct ynode *n,
		    const struct pf_where *w, const char **out)
{
	if (n->kind != YNODE_SCALAR)
		return pipefile_bad_type(c, key, n, w, "a string");
	*out = n->str;
	return 0;
}

/* key and value, checked as the API server does: a toleration without a
 * key tolerates every taint, so it must say Exists, which has no value. */
static int read_match(struct pf_ctx *c, const struct ynode *n,
		      const struct ynode **v, const struct ynode **k,
		      const struct pf_where *w, struct pf_toleration *t)
{
	int exists = t->op && !strcmp(t->op, "Exists");
	const char *s = "";

	if (v[TO_KEY] &&
	    (get_text(c, "key", v[TO_KEY], w, &s) ||
	     (*s && check(c, v[TO_KEY], &rule_label_key, "key", w))))
		return -1;
	if (v[TO_KEY] && *s)
		t->key = xstrdup(s);
	if (!t->key && !exists)
		return said(c, k[TO_KEY] ? k[TO_KEY] : n, w, "a toleration",
			    "without a 'key' must have 'operator: Exists', "
			    "which tolerates every taint (give it a 'key', or "
			    "add 'operator: Exists')");
	if (!v[TO_VALUE])
		return 0;
	if (get_text(c, "value", v[TO_VALUE], w, &s))
		return -1;
	if (*s && exists)
		return said(c, k[TO_VALUE], w, "a toleration",
			    "with 'operator: Exists' matches any value, so it "
			    "cannot have a 'value' (remove it, or use "
			    "'operator: Equal')");
	if (check(c, v[TO_VALUE], &rule_label_value, "value", w))
		return -1;
	if (!exists)
		t->value = xstrdup(s);
	return 0;
}

/* { key, operator, value, effect, tolerationSeconds } */
static int read_toleration(struct pf_ctx *c, const struct ynode *n,
			   const struct pf_where *up, struct pf_toleration *t)
{
	const struct ynode *v[TO__NR], *k[TO__NR];
	struct pf_where w = *up;
	long long secs;

	if (n->kind != YNODE_MAP)
		return pipefile_bad_type(c, "tolerations", n, up,
					 "a list of mappings, e.g. [{ key: "
					 "gpu, operator: Exists }]");
	w.section = "kubernetes.tolerations";
	if (pipefile_collect(c, n, toleration_keys, TO__NR, ALL_KEYS, &w, v, k))
		return -1;
	if (v[TO_OPERATOR] &&
	    read_enum(c, "operator", v[TO_OPERATOR], &w, operators,
		      ARRAY_SIZE(operators), "Equal or Exists", &t->op))
		return -1;
	if (read_match(c, n, v, k, &w, t))
		return -1;
	if (v[TO_EFFECT] && read_enum(c, "effect", v[TO_EFFECT], &w, effects,
				      ARRAY_SIZE(effects),
				      "NoSchedule, PreferNoSchedule or "
				      "NoExecute",
				      &t->effect))
		return -1;
	if (!v[TO_SECONDS])
		return 0;
	if (!t->effect || strcmp(t->effect, "NoExecute"))
		return said(c, k[TO_SECONDS], &w, "'tolerationSeconds'",
			    "applies only to 'effect: NoExecute' (set that "
			    "effect, or remove it)");
	if (pipefile_get_int(c, "tolerationSeconds", v[TO_SECONDS], &w, 0,
			     KUBE_MAX_ID, &secs))
		return -1;
	t->seconds = secs;
	return 0;
}

static int read_tolerations(struct pf_ctx *c, const struct ynode *n,
			    const struct pf_where *up,
			    struct pf_kube_sched *out)
{
	if (n->kind != YNODE_SEQ)
		return pipefile_bad_type(c, "tolerations", n, up,
					 "a list, e.g. [{ key: gpu, "
					 "operator: Exists }]");
	out->tolerations = xcalloc(n->nr + 1, sizeof(*out->tolerations));
	for (uint32_t i = 0; i < n->nr; i++) {
		struct pf_toleration *t = &out->tolerations[i];

		t->seconds = -1;
		out->tolerations_nr++;
		if (read_toleration(c, n->items[i], up, t))
			return -1;
	}
	return 0;
}

/* The keys of a pod's scheduling, in the top level or a stage (up). */
static int read_sched(struct pf_ctx *c, const struct ynode **v,
		      const struct pf_where *up, struct pf_kube_sched *out)
{
	if (v[KU_NODE_SELECTOR] &&
	    read_node_selector(c, v[KU_NODE_SELECTOR], up, &out->node_selector))
		return -1;
	if (v[KU_TOLERATIONS] &&
	    read_tolerations(c, v[KU_TOLERATIONS], up, out))
		return -1;
	if (v[KU_SERVICE_ACCOUNT] &&
	    read_name(c, "serviceAccountName", v[KU_SERVICE_ACCOUNT], up,
		      &out->service_account))
		return -1;
	return 0;
}

int pipefile_read_stage_kube(struct pf_ctx *c, const struct ynode *key,
			     const struct ynode *n, const char *stage,
			     const char *executor, struct pf_kube_sched *out,
			     unsigned *set)
{
	const struct ynode *v[KU__NR], *k[KU__NR];
	struct pf_where w = {.stage = stage, .section = "kubernetes"};
	struct pf_where sw = {.stage = stage};

	*set = 0;
	if (!n)
		return 0;
	if (strcmp(executor, "kubernetes"))
		return pipefile_src_error(
			c->src, c->err, key->line, key->col,
			"'kubernetes' applies to stages with executor: "
			"kubernetes, and stage '%s' runs on '%s' (set "
			"'executor: kubernetes', or remove 'kubernetes')",
			stage, executor);
	if (n->kind != YNODE_MAP)
		return pipefile_bad_type(c, "kubernetes", n, &sw,
					 "a mapping, e.g. { nodeSelector: { "
					 "disktype: ssd } }");
	if (pipefile_collect(c, n, kube_keys, KU__NR, SCHED_KEYS, &w, v, k) ||
	    read_sched(c, v, &w, out))
		return -1;
	*set = (v[KU_NODE_SELECTOR] ? PF_SCHED_NODE_SELECTOR : 0) |
	       (v[KU_TOLERATIONS] ? PF_SCHED_TOLERATIONS : 0) |
	       (v[KU_SERVICE_ACCOUNT] ? PF_SCHED_SERVICE_ACCOUNT : 0);
	return 0;
}

/* One entry of imagePullSecrets: regcred, or as Kubernetes writes it,
 * { name: regcred }. */
static int read_pull_secret(struct pf_ctx *c, const struct ynode *n,
			    const struct pf_where *up, char **out)
{
	static const char *const keys[] = {"name"};
	struct pf_where w = {.section = "kubernetes.imagePullSecrets"};
	const struct ynode *v[1], *k[1];

	if (n->kind == YNODE_SCALAR)
		return read_name(c, "imagePullSecrets", n, up, out);
	if (n->kind == YNODE_SEQ)
		return pipefile_bad_type(c, "imagePullSecrets", n, up,
					 "a list of secret names");
	if (pipefile_collect(c, n, keys, 1, ALL_KEYS, &w, v, k))
		return -1;
	if (!v[0])
		return said(c, n, &w, "an entry",
			    "needs a 'name' (write { name: regcred }, or just "
			    "the name)");
	return read_name(c, "name", v[0], &w, out);
}

static int read_pull_secrets(struct pf_ctx *c, const struct ynode *n,
			     const struct pf_where *up, struct strvec *out)
{
	const struct ynode *const *items = &n; /* a name: a list of one */
	uint32_t nr = 1;
	char *name;

	if (n->kind == YNODE_MAP)
		return pipefile_bad_type(c, "imagePullSecrets", n, up,
					 "a list of secret names, e.g. "
					 "[regcred]");
	if (n->kind == YNODE_SEQ) {
		items = (const struct ynode *const *)n->items;
		nr = n->nr;
	}
	for (uint32_t i = 0; i < nr; i++) {
		if (read_pull_secret(c, items[i], up, &name))
			return -1;
		strvec_push_nodup(out, name);
	}
	return 0;
}

enum { W_CLAIM, W_HOSTPATH, W_MOUNTPATH, W__NR };
static const char *const workspace_keys[W__NR] = {"claim", "hostPath",
						  "mountPath"};

static int read_abs_path(struct pf_ctx *c, const char *key,
			 const struct ynode *n, const struct pf_where *w,
			 char **out)
{
	const char *s = NULL;

	if (pipefile_get_string(c, key, n, w, &s))
		return -1;
	if (*s != '/')
		return pipefile_bad_type(c, key, n, w, "an absolute path");
	*out = xstrdup(s);
	return 0;
}

static int read_workspace(struct pf_ctx *c, const struct ynode *n)
{
	const struct ynode *v[W__NR], *k[W__NR];
	struct pf_where w = {.section = "kubernetes.workspace"};
	struct pf_where up = {.section = "kubernetes"};
	struct pf_kube *kube = &c->pf->kube;
	const char *s = NULL;

	if (n->kind != YNODE_MAP)
		return pipefile_bad_type(c, "workspace", n, &up,
					 "a mapping, e.g. { claim: pipe-ws }");
	if (pipefile_collect(c, n, workspace_keys, W__NR, ALL_KEYS, &w, v, k))
		return -1;
	if (v[W_CLAIM] && v[W_HOSTPATH])
		return pipefile_src_error(c->src, c->err, k[W_HOSTPATH]->line,
					  k[W_HOSTPATH]->col,
					  "set either 'claim' or 'hostPath' in "
					  "'kubernetes.workspace', not both");
	if (v[W_CLAIM]) {
		if (pipefile_get_string(c, "claim", v[W_CLAIM], &w, &s))
			return -1;
		kube->claim = xstrdup(s);
	}
	if (v[W_HOSTPATH] &&
	    read_abs_path(c, "hostPath", v[W_HOSTPATH], &w, &kube->host_path))
		return -1;
	if (v[W_MOUNTPATH] && read_abs_path(c, "mountPath", v[W_MOUNTPATH], &w,
					    &kube->mount_path))
		return -1;
	return 0;
}

static int read_cluster(struct pf_ctx *c, const struct ynode **v,
			const struct pf_where *w)
{
	struct pf_kube *kube = &c->pf->kube;
	const char *s = NULL;

	if (v[KU_CONTEXT]) {
		if (pipefile_get_string(c, "context", v[KU_CONTEXT], w, &s))
			return -1;
		kube->context = xstrdup(s);
	}
	if (v[KU_NAMESPACE]) {
		if (pipefile_get_string(c, "namespace", v[KU_NAMESPACE], w, &s))
			return -1;
		kube->namespace = xstrdup(s);
	}
	if (v[KU_WORKSPACE] && read_workspace(c, v[KU_WORKSPACE]))
		return -1;
	return 0;
}

int pipefile_read_kube(struct pf_ctx *c, const struct ynode *n)
{
	const struct ynode *v[KU__NR], *k[KU__NR];
	struct pf_where w = {.section = "kubernetes"}, top = {0};
	struct pf_kube *kube = &c->pf->kube;

	if (n->kind != YNODE_MAP)
		return pipefile_bad_type(c, "kubernetes", n, &top, "a mapping");
	if (pipefile_collect(c, n, kube_keys, KU__NR, ALL_KEYS, &w, v, k) ||
	    read_cluster(c, v, &w))
		return -1;
	if (v[KU_RUN_AS_USER] && read_uid(c, v[KU_RUN_AS_USER], &w, &kube->uid))
		return -1;
	if (v[KU_RUN_AS_GROUP] &&
	    pipefile_get_int(c, "runAsGroup", v[KU_RUN_AS_GROUP], &w, 0,
			     KUBE_MAX_ID, &kube->gid))
		return -1;
	if (v[KU_PULL_SECRETS] && read_pull_secrets(c, v[KU_PULL_SECRETS], &w,
						    &kube->image_pull_secrets))
		return -1;
	return read_sched(c, v, &w, &kube->defaults);
}
