/* dlopen and dlsym with pipe's errors. */
#include "util/dl.h"
#include "util/error.h"

#include <dlfcn.h>
#include <string.h>

void *dl_open(const char *soname, const char *package, struct error *err)
{
	void *lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);

	if (!lib)
		error_set(err, EXIT_ENV, "cannot load %s: %s (install %s)",
			  soname, dlerror(), package);
	return lib;
}

int dl_sym(void *lib, const char *soname, const char *name, void *slot,
	   struct error *err)
{
	void *p = dlsym(lib, name);

	if (!p)
		return error_set(err, EXIT_ENV, "cannot load %s: no '%s' in it",
				 soname, name);
	/* POSIX's way to turn dlsym's answer into a function pointer */
	memcpy(slot, &p, sizeof(p));
	return 0;
}

int dl_load(const char *soname, const char *package, const struct dl_fn *fns,
	    size_t n, int *loaded, struct error *err)
{
	void *lib;

	if (*loaded)
		return 0;
	if (!(lib = dl_open(soname, package, err)))
		return -1;
	for (size_t i = 0; i < n; i++)
		if (dl_sym(lib, soname, fns[i].name, fns[i].slot, err))
			return -1;
	*loaded = 1;
	return 0;
}
