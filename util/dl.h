/* Libraries loaded when first needed (dlopen) rather than at start-up:
 * the doors to libgit2 and libcurl use this, so that commands that need
 * neither do not pay for loading them and the dozens they pull in. */
#ifndef UTIL_DL_H
#define UTIL_DL_H

#include <stddef.h>

struct error;

/* Open the library soname; on failure set err (EXIT_ENV) naming it and the
 * Debian package to install, and return NULL. */
void *dl_open(const char *soname, const char *package, struct error *err);

/* Store the address of function name of lib into the function pointer at
 * slot. Fails (EXIT_ENV) when lib has no such function. */
int dl_sym(void *lib, const char *soname, const char *name, void *slot,
	   struct error *err);

/* One function to load: its name, and the function pointer to fill. */
struct dl_fn {
	const char *name;
	void *slot;
};

/* Unless *loaded: open soname and fill the n slots of fns, then set
 * *loaded. Errors as dl_open and dl_sym. */
int dl_load(const char *soname, const char *package, const struct dl_fn *fns,
	    size_t n, int *loaded, struct error *err);

#endif
