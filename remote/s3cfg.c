/* Where an S3 remote is and who we are there: the endpoint, region and
 * credentials from the options, the environment and the AWS profile
 * files, as the AWS CLI reads them. */
#include "remote/s3int.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

/* The first of the variables that is set and not empty. */
static const char *env2(const char *a, const char *b)
{
	return env(a) ? env(a) : env(b);
}

/* A profile file: the named variable's, else ~/.aws/NAME; "" unread. */
static void read_aws_file(struct strbuf *text, const char *var,
			  const char *name)
{
	struct strbuf path = STRBUF_INIT;

	if (env(var))
		strbuf_addstr(&path, env(var));
	else if (env("HOME"))
		strbuf_addf(&path, "%s/.aws/%s", env("HOME"), name);
	if (path.len && strbuf_read_file(text, path.buf, 0))
		strbuf_reset(text);
	strbuf_release(&path);
}

static char *pick(const struct strbuf *text, const char *section,
		  const char *key)
{
	struct strbuf v = STRBUF_INIT;

	if (!s3_ini_get(text->buf, text->len, section, key, &v) || !v.len) {
		strbuf_release(&v);
		return NULL;
	}
	return strbuf_detach(&v, NULL);
}

/* In ~/.aws/config a profile is [profile NAME], but [default]. */
static char *pick_config(const struct strbuf *cfg, const char *profile,
			 const char *key)
{
	char *sect = xstrfmt("profile %s", profile), *v;

	v = pick(cfg, sect, key);
	if (!v && !strcmp(profile, "default"))
		v = pick(cfg, "default", key);
	free(sect);
	return v;
}

static void wipe(char **s)
{
	if (*s)
		explicit_bzero(*s, strlen(*s));
	free(*s);
	*s = NULL;
}

static int credentials(struct s3_config *c, const char *profile,
		       const struct strbuf *creds, const struct strbuf *cfg,
		       struct error *err)
{
	if (env("AWS_ACCESS_KEY_ID") || env("AWS_SECRET_ACCESS_KEY")) {
		if (!env("AWS_ACCESS_KEY_ID") || !env("AWS_SECRET_ACCESS_KEY"))
			return error_set(err, EXIT_ENV,
					 "%s is set but %s is not",
					 env("AWS_ACCESS_KEY_ID")
						 ? "AWS_ACCESS_KEY_ID"
						 : "AWS_SECRET_ACCESS_KEY",
					 env("AWS_ACCESS_KEY_ID")
						 ? "AWS_SECRET_ACCESS_KEY"
						 : "AWS_ACCESS_KEY_ID");
		c->key_id = xstrdup(env("AWS_ACCESS_KEY_ID"));
		c->secret = xstrdup(env("AWS_SECRET_ACCESS_KEY"));
		if (env("AWS_SESSION_TOKEN"))
			c->token = xstrdup(env("AWS_SESSION_TOKEN"));
		return 0;
	}
	c->key_id = pick(creds, profile, "aws_access_key_id");
	c->secret = pick(creds, profile, "aws_secret_access_key");
	c->token = pick(creds, profile, "aws_session_token");
	/* the config file may hold them too */
	if (!c->key_id && !c->secret) {
		c->key_id = pick_config(cfg, profile, "aws_access_key_id");
		c->secret = pick_config(cfg, profile, "aws_secret_access_key");
		wipe(&c->token);
		c->token = pick_config(cfg, profile, "aws_session_token");
	}
	if (c->key_id && c->secret)
		return 0;
	wipe(&c->secret);
	wipe(&c->token);
	return error_set(err, EXIT_ENV,
			 "no AWS credentials for '%s': set AWS_ACCESS_KEY_ID "
			 "and AWS_SECRET_ACCESS_KEY, or give profile '%s' "
			 "aws_access_key_id and aws_secret_access_key in "
			 "~/.aws/credentials (AWS_SHARED_CREDENTIALS_FILE)",
			 c->bucket, profile);
}

static int endpoint(struct s3_config *c, const struct s3_opts *o,
		    struct error *err)
{
	const char *ep = o && o->endpoint ? o->endpoint
					  : env2("AWS_ENDPOINT_URL_S3",
						 "AWS_ENDPOINT_URL");
	size_t len;

	if (!ep) {
		/* AWS itself: virtual-hosted style, the bucket in the host */
		c->base_url = xstrfmt("https://%s.s3.%s.amazonaws.com",
				      c->bucket, c->region);
		c->path_style = 0;
		return 0;
	}
	if (strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8))
		return error_set(err, EXIT_USAGE,
				 "bad s3 endpoint '%s': expected http://HOST"
				 "[:PORT] or https://HOST[:PORT]",
				 ep);
	len = strlen(ep);
	while (len > 8 && ep[len - 1] == '/')
		len--;
	c->base_url = xstrndup(ep, len);
	c->path_style = 1; /* a custom endpoint: the bucket in the path */
	return 0;
}

int s3_config_load(struct s3_config *c, const char *url,
		   const struct s3_opts *o, struct error *err)
{
	struct strbuf creds = STRBUF_INIT, cfg = STRBUF_INIT;
	const char *profile = o && o->profile ? o->profile : env("AWS_PROFILE");
	int ret = -1;

	memset(c, 0, sizeof(*c));
	if (!profile)
		profile = "default";
	if (s3_parse_url(url, &c->bucket, &c->prefix, err))
		goto out;
	read_aws_file(&cfg, "AWS_CONFIG_FILE", "config");
	if (o && o->region)
		c->region = xstrdup(o->region);
	else if (env2("AWS_REGION", "AWS_DEFAULT_REGION"))
		c->region = xstrdup(env2("AWS_REGION", "AWS_DEFAULT_REGION"));
	else
		c->region = pick_config(&cfg, profile, "region");
	if (!c->region)
		c->region = xstrdup("us-east-1");
	if (strspn(c->region, "abcdefghijklmnopqrstuvwxyz0123456789-") !=
		    strlen(c->region) ||
	    !*c->region) {
		error_set(err, EXIT_USAGE, "bad AWS region '%s'", c->region);
		goto out;
	}
	if (endpoint(c, o, err))
		goto out;
	read_aws_file(&creds, "AWS_SHARED_CREDENTIALS_FILE", "credentials");
	ret = credentials(c, profile, &creds, &cfg, err);
out:
	explicit_bzero(creds.buf, creds.len);
	explicit_bzero(cfg.buf, cfg.len);
	strbuf_release(&creds);
	strbuf_release(&cfg);
	if (ret)
		s3_config_release(c);
	return ret;
}

void s3_config_release(struct s3_config *c)
{
	free(c->bucket);
	free(c->prefix);
	free(c->base_url);
	free(c->region);
	free(c->key_id);
	wipe(&c->secret);
	wipe(&c->token);
	memset(c, 0, sizeof(*c));
}
