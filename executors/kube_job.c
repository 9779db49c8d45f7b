/* The batch/v1 Job a stage becomes: one Indexed Job for a whole stage (one
 * completion) or for its datums (one completion each), under the
 * restricted pod security profile, its image pinned by digest, the
 * workspace mounted at its own path with the inputs read-only. */
#include "executors/kube.h"
#include "util/path.h"
#include "util/xalloc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NAME_MAX_LEN 52
#define LABEL_MAX_LEN 63

void kube_job_name(struct strbuf *out, const char *stage, const char *job_id)
{
	size_t room = NAME_MAX_LEN - strlen("pipe--") - strlen(job_id);
	size_t start = out->len;
	int dash = 1; /* no leading or repeated '-' */

	strbuf_addstr(out, "pipe-");
	for (const char *p = stage; *p && out->len - start - 5 < room; p++) {
		unsigned char c = (unsigned char)*p;

		if (isalnum(c)) {
			strbuf_addch(out, (char)tolower(c));
			dash = 0;
		} else if (!dash) {
			strbuf_addch(out, '-');
			dash = 1;
		}
	}
	while (out->len > start + 5 && out->buf[out->len - 1] == '-')
		strbuf_setlen(out, out->len - 1);
	strbuf_addf(out, "-%s", job_id);
}

void kube_label_value(struct strbuf *out, const char *s)
{
	size_t start = out->len;

	for (const char *p = s; *p && out->len - start < LABEL_MAX_LEN; p++) {
		unsigned char c = (unsigned char)*p;

		/* from the first alphanumeric on: the cap counts only what
		 * is kept */
		if (out->len == start && !isalnum(c))
			continue;
		if (isalnum(c) || c == '.' || c == '_' || c == '-')
			strbuf_addch(out, (char)c);
		else
			strbuf_addch(out, '_');
	}
	while (out->len > start &&
	       !isalnum((unsigned char)out->buf[out->len - 1]))
		strbuf_setlen(out, out->len - 1);
}

/* ------------------------------------------------------------------ */
/* Environments */

static const char *env_value(char *const *env, const char *kv)
{
	size_t klen = strcspn(kv, "=");

	for (char *const *e = env; e && *e; e++)
		if (!strncmp(*e, kv, klen) && (*e)[klen] == '=')
			return *e;
	return NULL;
}

/* sh single quotes: ' becomes '\'' */
static void sh_quote(struct strbuf *out, const char *s)
{
	strbuf_addch(out, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			strbuf_addstr(out, "'\\''");
		else
			strbuf_addch(out, *s);
	}
	strbuf_addch(out, '\'');
}

/* Whether s is UTF-8 (as JSON, and so the API, can carry it): no
 * overlong forms, surrogates or code points past U+10FFFF. */
static int is_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned c = *p++;
		int more = c < 0x80		   ? 0
			   : c >= 0xc2 && c < 0xe0 ? 1
			   : c >= 0xe0 && c < 0xf0 ? 2
			   : c >= 0xf0 && c < 0xf5 ? 3
						   : -1;
		unsigned cp = more == 1	  ? c & 0x1f
			      : more == 2 ? c & 0x0f
					  : c & 0x07;

		if (more < 0)
			return 0;
		if (!more)
			continue;
		for (int i = 0; i < more; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (*p & 0x3f);
		}
		if ((more == 2 &&
		     (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) ||
		    (more == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
	}
	return 1;
}

int kube_split_env(const struct exec_unit *units, size_t n,
		   struct strvec *common, struct strbuf *files)
{
	int own = 0;

	for (char *const *e = units[0].env; e && *e; e++) {
		int shared = 1;

		for (size_t i = 1; i < n && shared; i++) {
			const char *v = env_value(units[i].env, *e);

			shared = v && !strcmp(v, *e);
		}
		/* what JSON cannot carry goes by env file (sh takes any
		 * byte but NUL) */
		if (shared && is_utf8(*e))
			strvec_push(common, *e);
	}
	for (size_t i = 0; i < n; i++) {
		strbuf_init(&files[i], 0);
		for (char *const *e = units[i].env; e && *e; e++) {
			size_t klen = strcspn(*e, "=");
			char *key;

			if (env_value(common->v, *e) &&
			    !strcmp(env_value(common->v, *e), *e))
				continue;
			own = 1;
			key = xstrndup(*e, klen);
			strbuf_addf(&files[i], "export %s=", key);
			sh_quote(&files[i], (*e)[klen] ? *e + klen + 1 : "");
			strbuf_addch(&files[i], '\n');
			free(key);
		}
	}
	return own;
}

void kube_each_index(const char *list, size_t limit,
		     void (*fn)(void *arg, size_t index), void *arg)
{
	const char *p = list;

	while (p && *p) {
		char *end;
		unsigned long a = strtoul(p, &end, 10), b = a;

		if (end == p)
			return;
		p = end;
		if (*p == '-') {
			b = strtoul(p + 1, &end, 10);
			if (end == p + 1)
				return;
			p = end;
		}
		for (unsigned long i = a; i <= b && i < limit; i++)
			fn(arg, i);
		if (*p == ',')
			p++;
		else if (*p)
			return;
	}
}

/* ------------------------------------------------------------------ */
/* The manifest */

static void labels(struct json *obj, const struct kube_job_spec *s)
{
	struct json *l = json_new_object();
	struct strbuf v = STRBUF_INIT;

	json_put_str(l, KUBE_LABEL_MANAGED, "pipe");
	json_put_str(l, KUBE_LABEL_WORKSPACE, s->workspace_label);
	kube_label_value(&v, s->units[0].stage);
	json_put_str(l, KUBE_LABEL_STAGE, v.buf);
	if (s->units[0].job_id)
		json_put_str(l, KUBE_LABEL_JOB, s->units[0].job_id);
	json_set(obj, "labels", l);
	strbuf_release(&v);
}

static const char *mount_path(const struct kube_job_spec *s)
{
	return s->kopt && s->kopt->mount_path ? s->kopt->mount_path
					      : s->units[0].workspace;
}

/* The workspace-relative folder a unit writes in .pipe/ (a datum's
 * PIPE_OUT; for a Job of several datums the stage's folder that holds
 * them all), or NULL when rw is not in .pipe/. */
static char *pipe_rw_dir(const struct kube_job_spec *s, const char *rw)
{
	char *rel;
	size_t len;

	if (strncmp(rw, ".pipe/", 6))
		return NULL;
	rel = xstrdup(rw);
	len = strlen(rel);
	while (len > 1 && rel[len - 1] == '/')
		rel[--len] = '\0';
	if (s->n > 1 && strrchr(rel, '/') > rel + 5)
		*strrchr(rel, '/') = '\0';
	return rel;
}

/* A unit that writes only in .pipe/ (a datum: its PIPE_OUT) sees the
 * workspace read-only and its output folder read-write: two mounts,
 * whatever its inputs. */
static int writes_only_pipe(const struct exec_unit *u)
{
	if (!u->rw_paths || !*u->rw_paths)
		return 0;
	for (char *const *rw = u->rw_paths; *rw; rw++)
		if (strncmp(*rw, ".pipe/", 6))
			return 0;
	return 1;
}

/* hostPath: the output folder is a volume of its own, which the runtime
 * binds as it binds the workspace; a subPath costs the kubelet a safe
 * open and a bind mount of its own per pod. A claim has no other way. */
static int out_volumes(const struct kube_job_spec *s)
{
	return writes_only_pipe(&s->units[0]) && !(s->kopt && s->kopt->claim);
}

static void out_name(struct strbuf *sb, size_t i)
{
	strbuf_reset(sb);
	strbuf_addf(sb, "out-%zu", i);
}

static struct json *mount_named(const char *name, const char *path,
				const char *sub, int ro)
{
	struct json *m = json_new_object();

	json_put_str(m, "name", name);
	json_put_str(m, "mountPath", path);
	if (sub)
		json_put_str(m, "subPath", sub);
	if (ro)
		json_set_bool(m, "readOnly", 1);
	return m;
}

static struct json *mount(const char *path, const char *sub, int ro)
{
	return mount_named("workspace", path, sub, ro);
}

static int is_glob(const char *p)
{
	return strpbrk(p, "*?[") != NULL;
}

/* A datum: the workspace read-only, its output folder read-write. */
static struct json *private_mounts(const struct kube_job_spec *s)
{
	const struct exec_unit *u = &s->units[0];
	const char *mp = mount_path(s);
	struct json *v = json_new_array();
	struct strbuf p = STRBUF_INIT, name = STRBUF_INIT;
	size_t i = 0;

	json_push(v, mount(mp, NULL, 1));
	for (char *const *rw = u->rw_paths; *rw; rw++, i++) {
		char *rel = pipe_rw_dir(s, *rw);

		strbuf_reset(&p);
		strbuf_addf(&p, "%s/%s", mp, rel);
		out_name(&name, i);
		json_push(v, out_volumes(s)
				     ? mount_named(name.buf, p.buf, NULL, 0)
				     : mount(p.buf, rel, 0));
		free(rel);
	}
	strbuf_release(&p);
	strbuf_release(&name);
	return v;
}

/* The workspace read-write, then read-only over it: .pipe (but the
 * stage's datum folders), .git, and every input that exists. */
static struct json *volume_mounts(const struct kube_job_spec *s)
{
	const struct exec_unit *u = &s->units[0];
	const char *mp = mount_path(s);
	struct json *v;
	struct strbuf p = STRBUF_INIT, host = STRBUF_INIT;
	struct stat st;

	if (writes_only_pipe(u))
		return private_mounts(s);
	v = json_new_array();
	json_push(v, mount(mp, NULL, 0));
	strbuf_addf(&p, "%s/.pipe", mp);
	json_push(v, mount(p.buf, ".pipe", 1));
	strbuf_addf(&host, "%s/.git", u->workspace);
	if (!stat(host.buf, &st)) {
		strbuf_reset(&p);
		strbuf_addf(&p, "%s/.git", mp);
		json_push(v, mount(p.buf, ".git", 1));
	}
	for (char *const *rw = u->rw_paths; rw && *rw; rw++) {
		char *rel = pipe_rw_dir(s, *rw);

		if (!rel)
			continue;
		strbuf_reset(&p);
		strbuf_addf(&p, "%s/%s", mp, rel);
		json_push(v, mount(p.buf, rel, 0));
		free(rel);
	}
	for (char *const *ro = u->ro_paths; ro && *ro; ro++) {
		char *rel = xstrdup(*ro);
		size_t len = strlen(rel);

		while (len > 1 && rel[len - 1] == '/')
			rel[--len] = '\0';
		strbuf_reset(&host);
		strbuf_addf(&host, "%s/%s", u->workspace, rel);
		if (!is_glob(rel) && strcmp(rel, ".pipe") &&
		    strncmp(rel, ".pipe/", 6) && strcmp(rel, ".") &&
		    !stat(host.buf, &st) &&
		    (s->n == 1 || ro[1])) { /* a datum's own: not shared */
			strbuf_reset(&p);
			strbuf_addf(&p, "%s/%s", mp, rel);
			json_push(v, mount(p.buf, rel, 1));
		}
		free(rel);
	}
	strbuf_release(&p);
	strbuf_release(&host);
	return v;
}

static struct json *host_path(const char *path)
{
	struct json *w = json_new_object();

	json_set_str(w, "hostPath.path", path);
	json_set_str(w, "hostPath.type", "Directory");
	return w;
}

static struct json *volumes(const struct kube_job_spec *s)
{
	const char *root = s->kopt && s->kopt->host_path
				   ? s->kopt->host_path
				   : s->units[0].workspace;
	struct json *v = json_new_array(), *w;
	struct strbuf p = STRBUF_INIT, name = STRBUF_INIT;
	size_t i = 0;

	if (s->kopt && s->kopt->claim) {
		w = json_new_object();
		json_set_str(w, "persistentVolumeClaim.claimName",
			     s->kopt->claim);
	} else {
		w = host_path(root);
	}
	json_put_str(w, "name", "workspace");
	json_push(v, w);
	for (char *const *rw = s->units[0].rw_paths; out_volumes(s) && *rw;
	     rw++, i++) {
		char *rel = pipe_rw_dir(s, *rw);

		strbuf_reset(&p);
		strbuf_addf(&p, "%s/%s", root, rel);
		w = host_path(p.buf);
		out_name(&name, i);
		json_put_str(w, "name", name.buf);
		json_push(v, w);
		free(rel);
	}
	strbuf_release(&p);
	strbuf_release(&name);
	return v;
}

static struct json *resources(const struct exec_unit *u)
{
	struct json *r = json_new_object(), *req = json_new_object();
	struct json *lim = json_new_object();
	char buf[64];

	if (u->cpu_milli) {
		snprintf(buf, sizeof(buf), "%lldm", u->cpu_milli);
		json_put_str(req, "cpu", buf);
		json_put_str(lim, "cpu", buf);
	}
	if (u->memory_bytes) {
		long long m = u->memory_bytes;
		const char *unit = "";

		/* as people write it, and as the API shows it back */
		for (const char *const *x =
			     (const char *const[]){"Ki", "Mi", "Gi", "Ti",
						   NULL};
		     *x && m % 1024 == 0; x++) {
			m /= 1024;
			unit = *x;
		}
		snprintf(buf, sizeof(buf), "%lld%s", m, unit);
		json_put_str(req, "memory", buf);
		json_put_str(lim, "memory", buf);
	}
	if (u->gpu) {
		/* an extended resource: its request is its limit */
		snprintf(buf, sizeof(buf), "%d", u->gpu);
		json_put_str(lim, "nvidia.com/gpu", buf);
	}
	json_put(r, "requests", req);
	json_put(r, "limits", lim);
	return r;
}

/* The datum's own variables come from its env file (index-named): a
 * shell sources it, then runs the command. */
static const char wrap_shell[] =
	". \"$PIPE_ENV_DIR/$JOB_COMPLETION_INDEX\" && exec /bin/sh -c \"$1\"";
static const char wrap_argv[] =
	". \"$PIPE_ENV_DIR/$JOB_COMPLETION_INDEX\" && exec \"$@\"";

/* The same, and the command's output copied by tee into its log file
 * (kube_job_log_file) as it goes to the container's: the pod's exit
 * code is the command's (fd 4 carries it out of the pipeline). An image
 * without tee, or a folder it cannot write, runs the command as above,
 * and pipe reads the log from the API. */
#define WRAP_TEE(run)                                                           \
	". \"$PIPE_ENV_DIR/$JOB_COMPLETION_INDEX\" || exit 127\n"               \
	"L=\"$PIPE_OUT-$PIPE_POD.log\"\n"                                       \
	"if command -v tee >/dev/null 2>&1 && true 2>/dev/null >\"$L\"; then\n" \
	"exec 3>&1\n"                                                           \
	"r=$({ { " run " 2>&1 3>&- 4>&-; echo $? >&4; } | "                     \
	"tee \"$L\" >&3 3>&- 4>&-; } 4>&1)\n"                                   \
	"exit \"$r\"\n"                                                         \
	"fi\n"                                                                  \
	"exec " run
static const char wrap_shell_tee[] = WRAP_TEE("/bin/sh -c \"$1\"");
static const char wrap_argv_tee[] = WRAP_TEE("\"$@\"");

int kube_job_file_logs(const struct kube_job_spec *s)
{
	return s->env_dir && s->n > 1 && writes_only_pipe(&s->units[0]);
}

/* The kubelet expands $(NAME) in a container's command and env values
 * and turns $$ into $: each '$' doubled reaches the pod as written. */
static const char *literal(struct strbuf *sb, const char *s)
{
	strbuf_reset(sb);
	for (; *s; s++) {
		if (*s == '$')
			strbuf_addch(sb, '$');
		strbuf_addch(sb, *s);
	}
	return sb->buf;
}

static struct json *command(const struct kube_job_spec *s)
{
	const struct exec_unit *u = &s->units[0];
	struct json *c = json_new_array();
	struct strbuf lit = STRBUF_INIT;

	if (s->env_dir) {
		json_push_str(c, "/bin/sh");
		json_push_str(c, "-c");
		const char *w = u->shell ? wrap_shell : wrap_argv;

		if (kube_job_file_logs(s))
			w = u->shell ? wrap_shell_tee : wrap_argv_tee;
		json_push_str(c, literal(&lit, w));
		json_push_str(c, "pipe");
	} else if (u->shell) {
		json_push_str(c, "/bin/sh");
		json_push_str(c, "-c");
	}
	if (u->shell)
		json_push_str(c, literal(&lit, u->cmd));
	else
		for (char *const *a = u->argv; a && *a; a++)
			json_push_str(c, literal(&lit, *a));
	strbuf_release(&lit);
	return c;
}

static struct json *env(const struct kube_job_spec *s)
{
	struct json *v = json_new_array();
	struct strbuf p = STRBUF_INIT, lit = STRBUF_INIT;

	for (char *const *e = s->common_env; e && *e; e++) {
		struct json *o = json_new_object();
		char *key = xstrndup(*e, strcspn(*e, "="));

		json_put_str(o, "name", key);
		json_put_str(o, "value",
			     literal(&lit, strchr(*e, '=') ? strchr(*e, '=') + 1
							   : ""));
		json_push(v, o);
		free(key);
	}
	if (s->env_dir) {
		struct json *o = json_new_object();

		strbuf_addf(&p, "%s/%s", mount_path(s), s->env_dir);
		json_put_str(o, "name", "PIPE_ENV_DIR");
		json_put_str(o, "value", literal(&lit, p.buf));
		json_push(v, o);
	}
	if (kube_job_file_logs(s)) { /* names the pod's log file */
		struct json *o = json_new_object();

		json_put_str(o, "name", "PIPE_POD");
		json_set_str(o, "valueFrom.fieldRef.fieldPath",
			     "metadata.name");
		json_push(v, o);
	}
	strbuf_release(&p);
	strbuf_release(&lit);
	return v;
}

static void scheduling(struct json *pod, const struct exec_sched *sc)
{
	struct json *t;

	if (!sc)
		return;
	if (sc->node_selector && *sc->node_selector) {
		struct json *ns = json_new_object();

		for (char *const *kv = sc->node_selector; *kv; kv++) {
			char *key = xstrndup(*kv, strcspn(*kv, "="));

			json_put_str(ns, key, strchr(*kv, '=') + 1);
			free(key);
		}
		json_set(pod, "nodeSelector", ns);
	}
	if (sc->tolerations_nr) {
		t = json_new_array();
		for (size_t i = 0; i < sc->tolerations_nr; i++) {
			const struct exec_toleration *x = &sc->tolerations[i];
			struct json *o = json_new_object();

			if (x->key)
				json_put_str(o, "key", x->key);
			json_put_str(o, "operator", x->op ? x->op : "Equal");
			if (x->value)
				json_put_str(o, "value", x->value);
			if (x->effect)
				json_put_str(o, "effect", x->effect);
			if (x->seconds >= 0)
				json_put_int(o, "tolerationSeconds",
					     x->seconds);
			json_push(t, o);
		}
		json_set(pod, "tolerations", t);
	}
	if (sc->service_account)
		json_set_str(pod, "serviceAccountName", sc->service_account);
}

struct json *kube_job_manifest(const struct kube_job_spec *s)
{
	const struct exec_unit *u = &s->units[0];
	struct json *job = json_new_object(), *meta = json_new_object();
	struct json *tmeta = json_new_object(), *pod = json_new_object();
	struct json *ctr = json_new_object(), *ctrs = json_new_array();
	struct json *caps = json_new_array(), *annot = json_new_object();

	json_set_str(job, "apiVersion", "batch/v1");
	json_set_str(job, "kind", "Job");
	json_put_str(meta, "name", s->name);
	json_put_str(meta, "namespace", s->namespace);
	labels(meta, s);
	/* the key has dots: put, not set (a path) */
	json_put_str(annot, KUBE_ANNOTATION_STAGE, u->stage);
	json_set(meta, "annotations", annot);
	json_set(job, "metadata", meta);

	json_set_str(job, "spec.completionMode", "Indexed");
	json_set_int(job, "spec.completions", (long long)s->n);
	json_set_int(job, "spec.parallelism",
		     s->parallelism > 0 ? s->parallelism : 1);
	json_set_int(job, "spec.backoffLimitPerIndex", u->retries);
	/* a safety net when pipe dies before it deletes the Job */
	json_set_int(job, "spec.ttlSecondsAfterFinished", 3600);

	labels(tmeta, s);
	json_set_str(pod, "restartPolicy", "Never");
	/* no token in the pod, unless a service account is asked for (its
	 * token is then what the stage wants: cloud credentials) */
	if (!u->sched || !u->sched->service_account)
		json_set_bool(pod, "automountServiceAccountToken", 0);
	json_set_bool(pod, "enableServiceLinks", 0);
	/* a timeout or a cancel: TERM, then KILL after pipe's grace period
	 * (the cluster's default is 30 s) */
	json_set_int(pod, "terminationGracePeriodSeconds",
		     s->grace_s > 0 ? s->grace_s : 5);
	json_set_bool(pod, "securityContext.runAsNonRoot", 1);
	json_set_int(pod, "securityContext.runAsUser", s->uid);
	json_set_int(pod, "securityContext.runAsGroup", s->gid);
	json_set_str(pod, "securityContext.seccompProfile.type",
		     "RuntimeDefault");
	if (u->timeout_ms > 0)
		json_set_int(pod, "activeDeadlineSeconds",
			     (u->timeout_ms + 999) / 1000);
	scheduling(pod, u->sched);
	if (s->kopt && s->kopt->pull_secrets && *s->kopt->pull_secrets) {
		struct json *ps = json_new_array();

		for (char *const *n = s->kopt->pull_secrets; *n; n++) {
			struct json *o = json_new_object();

			json_put_str(o, "name", *n);
			json_push(ps, o);
		}
		json_set(pod, "imagePullSecrets", ps);
	}
	json_set(pod, "volumes", volumes(s));

	json_put_str(ctr, "name", "stage");
	json_put_str(ctr, "image", s->image);
	json_put_str(ctr, "imagePullPolicy", "IfNotPresent");
	json_set(ctr, "command", command(s));
	json_put_str(ctr, "workingDir", mount_path(s));
	json_set(ctr, "env", env(s));
	json_set(ctr, "resources", resources(u));
	json_set(ctr, "volumeMounts", volume_mounts(s));
	json_set_bool(ctr, "securityContext.allowPrivilegeEscalation", 0);
	json_set_bool(ctr, "securityContext.runAsNonRoot", 1);
	json_push_str(caps, "ALL");
	json_set(ctr, "securityContext.capabilities.drop", caps);
	json_push(ctrs, ctr);
	json_set(pod, "containers", ctrs);

	json_set(job, "spec.template.metadata", tmeta);
	json_set(job, "spec.template.spec", pod);
	return job;
}
