/* The Kubernetes executor's parts, private to executors/kube*.c and
 * executors/kubernetes.c: the Job manifest (kube_job.c) and the list +
 * watch of Jobs and pods (kube_watch.c). */
#ifndef EXECUTORS_KUBE_H
#define EXECUTORS_KUBE_H

#include <stddef.h>

#include "executors/executor.h"
#include "executors/http.h"
#include "executors/json.h"
#include "executors/loop.h"
#include "util/strbuf.h"
#include "util/strvec.h"

/* Labels every object pipe makes carries. */
#define KUBE_LABEL_MANAGED "app.kubernetes.io/managed-by"
#define KUBE_LABEL_WORKSPACE "pipe.dev/workspace"
#define KUBE_LABEL_STAGE "pipe.dev/stage"
#define KUBE_LABEL_JOB "pipe.dev/job"
#define KUBE_ANNOTATION_STAGE "pipe.dev/stage-name"
#define KUBE_INDEX_LABEL "batch.kubernetes.io/job-completion-index"

/* What a Job is made of: its units share the stage, image, command and
 * mounts; what differs between them (a datum's PIPE_DATUM and PIPE_OUT)
 * is in env files, one per completion index. */
struct kube_job_spec {
	const char *name; /* pipe-<stage>-<job id> */
	const char *namespace;
	const char *workspace_label;
	const struct exec_unit *units; /* units[0] gives the shared parts */
	size_t n;
	int parallelism;
	const char *image; /* pinned: NAME@sha256:... */
	const struct exec_kube *kopt;
	long long uid, gid;	 /* resolved: never -1, never 0 */
	const char *env_dir;	 /* workspace-relative folder of the env
				  * files; NULL when every unit has the
				  * same environment */
	char *const *common_env; /* KEY=VALUE for every pod */
	int grace_s;		 /* TERM to KILL when a pod is stopped */
};

/* "pipe-train-0a1b2c3d4e5f": DNS-safe, at most 52 characters, so that a
 * pod's hostname (name-index) and the Job's labels stay valid. */
void kube_job_name(struct strbuf *out, const char *stage, const char *job_id);

/* A label value from any text: [a-z0-9A-Z._-], at most 63, alphanumeric
 * at both ends ("" when nothing is left). */
void kube_label_value(struct strbuf *out, const char *s);

/* 1 when spec's pods (a Job of several datums, each writing only its
 * PIPE_OUT) also write their output to "PIPE_OUT-POD.log" beside their
 * PIPE_OUT, in the folder they mount read-write: pipe reads a pod that
 * ended before its log was followed from there, not from the API. */
int kube_job_file_logs(const struct kube_job_spec *spec);

/* The batch/v1 Job for spec. */
struct json *kube_job_manifest(const struct kube_job_spec *spec);

/* Split the units' environments into what all share (common) and one env
 * file body per unit (sh "export K='v'" lines); returns 1 when any unit
 * has a variable of its own. */
int kube_split_env(const struct exec_unit *units, size_t n,
		   struct strvec *common, struct strbuf *files);

/* Parse "0,2-4,7" (a Job's completedIndexes or failedIndexes) and call fn
 * for each index below limit. */
void kube_each_index(const char *list, size_t limit,
		     void (*fn)(void *arg, size_t index), void *arg);

/* ---- list + watch ---- */

struct kube_watch;
typedef void kube_watch_fn(void *arg, const char *type,
			   const struct json *object);
/* Ask for new credentials, start a request (the executor's: auth header,
 * API prefix); the watch uses it for its lists and watches. */
typedef struct http_xfer *kube_request_fn(
	void *arg, const char *method, const char *path,
	const struct strbuf *body, long timeout_ms, http_done_fn *done,
	void *done_arg, void (*on_data)(void *, const char *, size_t));
/* Called when the API cannot be reached for long (message), so the
 * executor can fail its units. */
typedef void kube_watch_lost_fn(void *arg, const char *message);

/* Watch objects at path (".../jobs", ".../pods") matching selector: a
 * list, then a watch from its resourceVersion; on 410 Gone or a dropped
 * stream the watch resumes, re-listing when the version is gone, with
 * backoff while the API does not answer. fn sees every object as
 * "ADDED", "MODIFIED" or "DELETED" (a re-list says ADDED again), then
 * "LISTED" with the whole list after each list (what is not in it is
 * gone), and "UNAUTHORIZED" (object NULL) after a 401. */
struct kube_watch *kube_watch_new(const char *path, const char *selector,
				  kube_request_fn *req, kube_watch_fn *fn,
				  kube_watch_lost_fn *lost, void *arg);
void kube_watch_start(struct kube_watch *w);
/* Stop (the watch may be started again) or free; NULL is fine. */
void kube_watch_stop(struct kube_watch *w);
void kube_watch_free(struct kube_watch *w);
/* For the fault tests: how many times it listed. */
unsigned kube_watch_lists(const struct kube_watch *w);

#endif
