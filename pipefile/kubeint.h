/* What pipefile/kubeconfig.c and pipefile/kubeentry.c share: the merged
 * kubeconfig files, indexed by name, and the secret-free located errors. */
#ifndef PIPEFILE_KUBEINT_H
#define PIPEFILE_KUBEINT_H

#include "pipefile/internal.h"
#include "util/kubecfg.h"

enum { KC_CLUSTERS, KC_USERS, KC_CONTEXTS, KC__NR };

extern const char *const kc_kind_name[KC__NR]; /* "cluster", ... */

struct kc_file {
	struct pf_src src; /* name and text owned */
	char *dir;	   /* "" or the folder with its '/': relative
			    * paths in the file are resolved against it */
	struct ydoc doc;
};

/* A named cluster, user or context, from the first file defining it. */
struct kc_entry {
	const struct ynode *name, *body; /* body: NULL when missing */
	const struct kc_file *f;
	int kind;
};

struct kc {
	struct kc_file *files;
	size_t nr;
	struct kc_entry *ent[KC__NR];
	size_t ent_nr[KC__NR], ent_alloc[KC__NR];
	struct strmap map[KC__NR];   /* name -> index + 1 */
	const struct ynode *current; /* the current-context chosen */
	const struct kc_file *current_f;
	const struct ynode **secrets; /* scalars never to quote */
	size_t secret_nr, secret_alloc, walked;
	struct error *err;
};

/* A located error at node n of file f (either may be NULL), with code;
 * the source line is left out when it may hold a secret. Returns -1. */
__attribute__((format(printf, 5, 6))) int kc_fail(struct kc *k,
						  const struct kc_file *f,
						  const struct ynode *n,
						  int code, const char *fmt,
						  ...);

/* The value of key in mapping map, or NULL (map NULL or not a mapping). */
const struct ynode *kc_get(const struct ynode *map, const char *key);

/* The entry of that kind and name, or NULL. */
const struct kc_entry *kc_find(const struct kc *k, int kind, const char *name);

/* "known clusters: 'a', 'b'" (the first ten), or "no cluster is defined". */
void kc_known(const struct kc *k, int kind, struct strbuf *out);

/* Read a regular file of at most max bytes into out: 0, or -1 (errno;
 * EINVAL: not a regular file, EFBIG: larger than max). */
int kc_read_file(const char *path, size_t max, struct strbuf *out);
/* strerror() with words for kc_read_file's EINVAL and EFBIG. */
const char *kc_strerror(int e);

/* pipefile/kubeentry.c: fill out (context and source set already) from
 * context entry ctx: its namespace, cluster and user. */
int kc_decode_context(struct kc *k, const struct kc_entry *ctx,
		      struct kube_config *out);

#endif
