/*
 * The pki statement (pki.h).
 */
#include <stdlib.h>
#include <string.h>

#include "pki.h"
#include "xmalloc.h"

struct pki *
pki_lookup(struct pki_list *list, const char *name)
{
	struct pki	*p;

	TAILQ_FOREACH(p, list, entry)
		if (strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

void
pki_parse(struct conf *cf, struct pki_list *list)
{
	static const char *const kinds[] = { "cert", "key", "ca" };
	const char	*name, *file;
	struct pki	*p;
	char		**path[3], **pem[3];
	size_t		*len[3], k;

	if ((name = conf_word(cf, "a pki name")) == NULL)
		return;
	for (k = 0; k < 3; k++)
		if (conf_accept(cf, kinds[k]))
			break;
	if (k == 3) {
		conf_error(cf, "expected cert, key or ca, got %s",
		    conf_describe(conf_peek(cf)));
		return;
	}
	if ((file = conf_word(cf, "a file name")) == NULL || !conf_end(cf))
		return;
	if ((p = pki_lookup(list, name)) == NULL) {
		p = xcalloc(1, sizeof(*p));
		p->name = xstrdup(name);
		TAILQ_INSERT_TAIL(list, p, entry);
	}
	path[0] = &p->cert_file, pem[0] = &p->cert, len[0] = &p->cert_len;
	path[1] = &p->key_file, pem[1] = &p->key, len[1] = &p->key_len;
	path[2] = &p->ca_file, pem[2] = &p->ca, len[2] = &p->ca_len;
	free(*path[k]);
	*path[k] = xstrdup(file);
	if (!cf->shipped && !cf->no_files) {
		free(*pem[k]);
		*pem[k] = conf_read_file(cf, file, PEM_MAX, 0, len[k]);
	}
}

void
pki_list_free(struct pki_list *list)
{
	struct pki	*p;

	while ((p = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, p, entry);
		free(p->name);
		free(p->cert_file);
		free(p->key_file);
		free(p->ca_file);
		free(p->cert);
		if (p->key != NULL)
			explicit_bzero(p->key, p->key_len);
		free(p->key);
		free(p->ca);
		free(p);
	}
}
